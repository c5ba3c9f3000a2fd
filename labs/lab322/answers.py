"""Trusted answers of Lab 3.2.2, "Quantizing a real model": all-MiniLM-L6-v2 measured by its task.

Every figure comes from :func:`reference.minilm.encode` (the FP32 forward pass, or one whose weight
matrices, and optionally the inputs of its linear layers, were fake-quantized with
:func:`reference.fake_quantize`). Nothing here re-implements a number format.

Definitions (the notebook states the same ones):

* **scheme**: a weight format plus how its scales are shared (:data:`SCHEMES`): per tensor, per
  output channel (row of the ``(out, in)`` weight), per group of 128 along the input dimension, or a
  block format's own blocks (NVFP4 16, MXFP4 32).
* **bytes** of a matrix in a scheme (:func:`matrix_bytes`): ``ceil(elements * bits / 8)`` plus every
  scale: FP32 (4 bytes) for the per-tensor, per-channel and per-group scales (the quantizer computes
  them in float32 and the dequantized values depend on every bit of them), the block formats' own
  scale format (1 byte: E4M3 for NVFP4, E8M0 for MXFP4) per block, and NVFP4's FP32 tensor scale.
* **cosine**: mean over the sentences of the cosine between the quantized and the FP32 embedding.
* **rank correlation**: Spearman's correlation between the FP32 and the quantized model's cosine
  similarities of all sentence pairs (``i < j``): does retrieval order the sentences the same way?
* **top-1 agreement**: fraction of sentences whose nearest other sentence is the same as in FP32.
* **layer sensitivity**: the cosine with one matrix quantized and the other 35 in FP32.
* **W8A8**: weights INT8 per channel, and the input of each of the 36 linear layers quantized to
  INT8 with one scale for all the batch's tokens (per tensor) or one per token (per row).

``python -m labs.lab322.answers`` prints every figure.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch

from reference import minilm
from reference.formats import BlockFormat, get_format
from reference.quantize import fake_quantize
from reference.weights import OUTLIER_LAYER, layer_names, short_name

HERE = Path(__file__).resolve().parent
SENTENCE_FILES = {"public": HERE / "sentences_public.txt", "hidden": HERE / "sentences_hidden.txt"}
SCALE_BYTES = 4  # FP32 per-tensor / per-channel / per-group scales, as reference.quantize computes them
GROUP = 128  # INT4 groups of 128 along the input dimension: the common weight-only INT4 recipe (GPTQ, AWQ)
COSINE_FLOOR = 0.99  # the mixed-precision exercise's floor: mean cosine vs FP32 on the hidden sentences
# The reference plan is searched on the public sentences for the floor plus this margin, so that it meets
# the floor on the hidden ones too: one model's public and hidden cosines differ by up to 0.0014 for the
# uniform schemes of the format table and by up to 0.0003 for the plans searched at floors 0.990-0.993.
PLAN_MARGIN = 0.001
DROP_UNIT = 1e-6  # the plan search counts cosine drops in steps of 1e-6 (well below any figure reported)


# ---------------------------------------------------------------------------------------------
# Schemes: format + granularity, as data
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scheme:
    """A weight format and the granularity of its scales.

    format       a :func:`reference.get_format` name
    granularity  "none" (a plain cast, no scale), "tensor", "channel" (one scale per output row),
                 "group" (one per ``group_size`` elements of a row) or "block" (the format's own blocks)
    """

    name: str
    label: str
    format: str
    granularity: str
    group_size: Optional[int] = None

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        """Return ``w`` fake-quantized in this scheme (float32, ``w``'s shape)."""
        if self.granularity == "none":
            return w.to(torch.float32) if self.format == "fp32" else fake_quantize(w, self.format)
        if self.granularity == "channel":
            return fake_quantize(w, self.format, group_size=w.shape[-1])
        if self.granularity == "group":
            return fake_quantize(w, self.format, group_size=self.group_size)
        return fake_quantize(w, self.format)  # "tensor" and "block": the format's own rule

    def scales(self, shape: Sequence[int]) -> int:
        """Return how many scales a matrix of ``shape`` ``(out, in)`` stores in this scheme."""
        out, n = shape[0], math.prod(shape)
        return {"none": 0, "tensor": 1, "channel": out, "group": n // (self.group_size or 1),
                "block": n // getattr(get_format(self.format), "block_size", 1)}[self.granularity]


_SCHEMES = (
    Scheme("fp32", "FP32", "fp32", "none"),
    Scheme("bf16", "BF16", "bf16", "none"),
    Scheme("int8_per_channel", "INT8 per-channel", "int8", "channel"),
    Scheme("fp8_e4m3fn", "FP8 E4M3", "fp8_e4m3fn", "tensor"),
    Scheme("int8", "INT8 per-tensor", "int8", "tensor"),
    Scheme("nvfp4", "NVFP4", "nvfp4", "block"),
    Scheme("mxfp4", "MXFP4", "mxfp4", "block"),
    Scheme("int4_g128", f"INT4 groups of {GROUP}", "int4", "group", GROUP),
    Scheme("int4", "INT4 per-tensor", "int4", "tensor"),
)
SCHEMES: dict[str, Scheme] = {s.name: s for s in _SCHEMES}
# The format table of DESIGN §9, in its order (best first there).
TABLE = ("int8_per_channel", "fp8_e4m3fn", "nvfp4", "int8", "mxfp4", "int4_g128", "int4")
# What a plan may choose per layer (FP32 and BF16 never win: INT8 per-channel costs 0.0004 cosine in all).
PLAN_SCHEMES = ("int8_per_channel", "fp8_e4m3fn", "int8", "nvfp4", "mxfp4", "int4_g128", "int4")


def get_scheme(name: str) -> Scheme:
    """Look a scheme up by name; the error lists the valid names."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheme {name!r}; valid schemes: {', '.join(SCHEMES)}") from None


# ---------------------------------------------------------------------------------------------
# Sentences and metrics
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _read(which: str) -> tuple[str, ...]:
    path = SENTENCE_FILES[which]
    return tuple(s for s in (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
                 if s and not s.startswith("#"))


def sentences(which: str = "public") -> list[str]:
    """Return the lab's sentence set ``"public"`` (40, shown to students) or ``"hidden"`` (20, graders only)."""
    if which not in SENTENCE_FILES:
        raise ValueError(f"sentences: which must be one of {sorted(SENTENCE_FILES)}, got {which!r}")
    return list(_read(which))


@functools.lru_cache(maxsize=8)
def _fp32_embeddings(texts: tuple[str, ...]) -> torch.Tensor:
    return minilm.encode(list(texts))


def fp32_embeddings(texts: Sequence[str]) -> torch.Tensor:
    """Return the FP32 model's embeddings of ``texts`` (cached: the baseline of every metric)."""
    return _fp32_embeddings(tuple(texts))


def mean_cosine(reference: torch.Tensor, embeddings: torch.Tensor) -> float:
    """Return the mean cosine between matching rows of two embedding matrices."""
    r = torch.nn.functional.normalize(reference.double(), dim=1)
    e = torch.nn.functional.normalize(embeddings.double(), dim=1)
    return float((r * e).sum(dim=1).mean())


def _pair_similarities(e: torch.Tensor) -> torch.Tensor:
    e = torch.nn.functional.normalize(e.double(), dim=1)
    i, j = torch.triu_indices(e.shape[0], e.shape[0], offset=1)
    return (e @ e.T)[i, j]


def _ranks(x: torch.Tensor) -> torch.Tensor:
    # Ordinal ranks: similarities of distinct sentences are distinct floats, so ties do not arise.
    r = torch.empty_like(x)
    r[x.argsort()] = torch.arange(x.numel(), dtype=x.dtype)
    return r


def rank_correlation(reference: torch.Tensor, embeddings: torch.Tensor) -> float:
    """Return Spearman's correlation of the pairwise cosine similarities of two embedding sets."""
    a, b = _ranks(_pair_similarities(reference)), _ranks(_pair_similarities(embeddings))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def top1_agreement(reference: torch.Tensor, embeddings: torch.Tensor) -> float:
    """Return the fraction of sentences whose nearest other sentence is the same in both sets."""
    def nearest(e):
        e = torch.nn.functional.normalize(e.double(), dim=1)
        s = e @ e.T
        s.fill_diagonal_(-math.inf)
        return s.argmax(dim=1)
    return float((nearest(reference) == nearest(embeddings)).double().mean())


def metrics(reference: torch.Tensor, embeddings: torch.Tensor) -> dict[str, float]:
    """Return cosine, worst cosine, rank correlation and top-1 agreement of ``embeddings`` vs ``reference``."""
    cos = (torch.nn.functional.normalize(reference.double(), dim=1)
           * torch.nn.functional.normalize(embeddings.double(), dim=1)).sum(dim=1)
    return {"cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "rank_correlation": rank_correlation(reference, embeddings),
            "top1": top1_agreement(reference, embeddings)}


# ---------------------------------------------------------------------------------------------
# Plans: a scheme per encoder matrix
# ---------------------------------------------------------------------------------------------

Plan = Mapping[str, str]


def uniform_plan(scheme: str) -> dict[str, str]:
    """Return the plan that puts all 36 encoder matrices in ``scheme``."""
    get_scheme(scheme)
    return {name: scheme for name in layer_names()}


def _check_plan(plan: Plan, names: Iterable[str]) -> None:
    names = list(names)
    missing = [n for n in names if n not in plan]
    extra = [n for n in plan if n not in names]
    if missing or extra:
        raise ValueError(f"a plan names each of the {len(names)} matrices exactly once; missing: "
                         f"{', '.join(map(short_name, missing[:3])) or 'none'}{' ...' if len(missing) > 3 else ''}; "
                         f"unknown: {', '.join(map(repr, extra[:3])) or 'none'}")
    for scheme in plan.values():
        get_scheme(scheme)


def matrix_bytes(scheme: str, shape: Sequence[int]) -> int:
    """Return the bytes a weight of ``shape`` ``(out, in)`` takes in ``scheme``, scales included."""
    s = get_scheme(scheme)
    fmt = get_format(s.format)
    n = math.prod(shape)
    total = math.ceil(n * fmt.bits / 8)  # 4-bit elements pack two per byte
    if isinstance(fmt, BlockFormat):
        total += s.scales(shape) * fmt.scale.bits // 8 + (SCALE_BYTES if fmt.tensor_scale else 0)
    else:
        total += s.scales(shape) * SCALE_BYTES
    return total


@functools.lru_cache(maxsize=1)
def _shapes() -> dict[str, tuple[int, ...]]:
    w = minilm.load()
    return {name: tuple(w[name].shape) for name in layer_names()}


def plan_bytes(plan: Plan, shapes: Optional[Mapping[str, Sequence[int]]] = None) -> int:
    """Return the bytes of the matrices a plan quantizes (default: MiniLM's 36), scales included."""
    shapes = _shapes() if shapes is None else shapes
    _check_plan(plan, shapes)
    return sum(matrix_bytes(plan[name], shape) for name, shape in shapes.items())


def quantize_weights(plan: Plan) -> dict[str, torch.Tensor]:
    """Return the fake-quantized matrices of a plan (a subset of the 36 names is allowed)."""
    w = minilm.load()
    for name, scheme in plan.items():
        if name not in w:
            raise ValueError(f"{name!r} is not a tensor of the model; use names from reference.weights.layer_names()")
    return {name: get_scheme(scheme).quantize(w[name]) for name, scheme in plan.items()}


def evaluate(plan: Plan, texts: Optional[Sequence[str]] = None,
             act_quant: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict[str, float]:
    """Return :func:`metrics` of the model with ``plan``'s matrices quantized (others FP32), on ``texts``."""
    texts = sentences("public") if texts is None else list(texts)
    return metrics(fp32_embeddings(texts), minilm.encode(texts, quantize_weights(plan), act_quant=act_quant))


# ---------------------------------------------------------------------------------------------
# The lab's figures
# ---------------------------------------------------------------------------------------------

def format_table(texts: Optional[Sequence[str]] = None, schemes: Iterable[str] = TABLE) -> dict[str, dict]:
    """Quantize all 36 matrices in each scheme; return ``{scheme: metrics + "bytes"}``."""
    return {s: {**evaluate(uniform_plan(s), texts), "bytes": plan_bytes(uniform_plan(s))} for s in schemes}


def layer_sensitivity(scheme: str = "int8", texts: Optional[Sequence[str]] = None) -> list[tuple[str, float]]:
    """Quantize one matrix at a time in ``scheme``; return ``(layer, cosine)`` pairs, largest drop first."""
    texts = sentences("public") if texts is None else list(texts)
    ref = fp32_embeddings(texts)
    q = quantize_weights(uniform_plan(scheme))
    out = [(name, mean_cosine(ref, minilm.encode(texts, {name: q[name]}))) for name in layer_names()]
    return sorted(out, key=lambda pair: pair[1])


def drop_table(texts: Optional[Sequence[str]] = None,
               schemes: Iterable[str] = PLAN_SCHEMES) -> dict[str, dict[str, float]]:
    """Return ``{layer: {scheme: 1 - cosine}}`` with that one matrix quantized (36 x schemes forward passes)."""
    texts = sentences("public") if texts is None else list(texts)
    ref = fp32_embeddings(texts)
    out: dict[str, dict[str, float]] = {name: {} for name in layer_names()}
    for s in schemes:
        q = quantize_weights(uniform_plan(s))
        for name in layer_names():
            out[name][s] = 1.0 - mean_cosine(ref, minilm.encode(texts, {name: q[name]}))
    return out


def cheapest_plan(drops: Mapping[str, Mapping[str, float]], costs: Mapping[str, Mapping[str, int]],
                  budget: float) -> dict[str, str]:
    """Pick one scheme per layer so the summed drops stay <= ``budget`` at the fewest summed bytes.

    An exact multiple-choice knapsack by dynamic programming over the drop budget, counted in steps of
    :data:`DROP_UNIT` (each drop rounded up, so the plan's true summed drop never exceeds the budget).
    ``drops[layer][scheme]`` and ``costs[layer][scheme]`` name the same schemes. Raises ValueError when
    even the smallest drops exceed the budget.
    """
    cap = int(math.floor(budget / DROP_UNIT + 1e-9))
    if cap < 0:
        raise ValueError(f"cheapest_plan: budget must be >= 0, got {budget}")
    layers = list(drops)
    inf = np.iinfo(np.int64).max // 4
    best = np.zeros(cap + 1, dtype=np.int64)  # best[u]: fewest bytes of the layers so far with summed drop <= u
    choices = []
    for layer in layers:
        options = list(drops[layer])
        new = np.full(cap + 1, inf, dtype=np.int64)
        pick = np.full(cap + 1, -1, dtype=np.int64)
        for k, s in enumerate(options):
            d = max(0, math.ceil(drops[layer][s] / DROP_UNIT - 1e-9))
            if d > cap:
                continue
            cand = np.full(cap + 1, inf, dtype=np.int64)
            cand[d:] = best[:cap + 1 - d] + int(costs[layer][s])
            better = cand < new
            new[better], pick[better] = cand[better], k
        best = np.minimum(new, inf)
        choices.append((options, pick, [max(0, math.ceil(drops[layer][s] / DROP_UNIT - 1e-9)) for s in options]))
    if best[cap] >= inf:
        raise ValueError(f"cheapest_plan: no plan keeps the summed drop within {budget}")
    plan, u = {}, cap
    for layer, (options, pick, units) in zip(reversed(layers), reversed(choices)):
        k = int(pick[u])
        plan[layer] = options[k]
        u -= units[k]
    return {layer: plan[layer] for layer in layers}


def search_plan(floor: float = COSINE_FLOOR + PLAN_MARGIN, texts: Optional[Sequence[str]] = None,
                schemes: Iterable[str] = PLAN_SCHEMES, drops: Optional[Mapping[str, Mapping[str, float]]] = None,
                rounds: int = 5) -> dict[str, str]:
    """Return the fewest-bytes plan whose measured cosine on ``texts`` is >= ``floor``.

    Single-layer drops add up almost exactly (all-NVFP4: 0.0234 summed vs 0.0236 measured), so the
    plan is the exact cheapest one under "summed drop <= 1 - floor" (:func:`cheapest_plan`), then
    measured; when the measurement falls short, the budget shrinks by the shortfall and the search reruns.
    """
    texts = sentences("public") if texts is None else list(texts)
    schemes = tuple(schemes)
    drops = drop_table(texts, schemes) if drops is None else drops
    shapes = _shapes()
    costs = {name: {s: matrix_bytes(s, shapes[name]) for s in schemes} for name in drops}
    budget = 1.0 - floor
    for _ in range(rounds):
        plan = cheapest_plan(drops, costs, budget)
        measured = evaluate(plan, texts)["cosine"]
        if measured >= floor:
            return plan
        budget -= (floor - measured) + DROP_UNIT
    raise RuntimeError(f"search_plan: no plan met cosine {floor} within {rounds} rounds")


def _plan_from_short(short: Mapping[str, str]) -> dict[str, str]:
    by_short = {short_name(n): n for n in layer_names()}
    return {by_short[k]: v for k, v in short.items()}


# The plan search_plan() returns on the public sentences (floor 0.99 + margin), stored so a grader
# needs no search (252 forward passes): tests check it meets the floor on the hidden sentences and
# costs less than every uniform plan that does. Keys are reference.weights.short_name()s.
_REFERENCE_PLAN_SHORT = {
    "0.q": "mxfp4", "0.k": "mxfp4", "0.v": "nvfp4", "0.attn_out": "nvfp4", "0.ffn_up": "nvfp4", "0.ffn_down": "nvfp4",
    "1.q": "nvfp4", "1.k": "nvfp4", "1.v": "nvfp4", "1.attn_out": "nvfp4", "1.ffn_up": "nvfp4", "1.ffn_down": "nvfp4",
    "2.q": "mxfp4", "2.k": "nvfp4", "2.v": "fp8_e4m3fn", "2.attn_out": "nvfp4", "2.ffn_up": "nvfp4",
    "2.ffn_down": "nvfp4",
    "3.q": "nvfp4", "3.k": "nvfp4", "3.v": "fp8_e4m3fn", "3.attn_out": "nvfp4", "3.ffn_up": "int8_per_channel",
    "3.ffn_down": "nvfp4",
    "4.q": "mxfp4", "4.k": "nvfp4", "4.v": "fp8_e4m3fn", "4.attn_out": "nvfp4", "4.ffn_up": "int8_per_channel",
    "4.ffn_down": "nvfp4",
    "5.q": "nvfp4", "5.k": "nvfp4", "5.v": "int8_per_channel", "5.attn_out": "int8_per_channel", "5.ffn_up": "int8",
    "5.ffn_down": "int8_per_channel",
}
REFERENCE_PLAN: dict[str, str] = _plan_from_short(_REFERENCE_PLAN_SHORT)


def reference_plan() -> dict[str, str]:
    """Return the reference mixed-precision plan (:data:`REFERENCE_PLAN`, from :func:`search_plan`)."""
    return dict(REFERENCE_PLAN)


def w8a8(texts: Optional[Sequence[str]] = None) -> dict[str, dict[str, float]]:
    """Return metrics of INT8 per-channel weights alone and with INT8 inputs, per tensor and per token."""
    texts = sentences("public") if texts is None else list(texts)
    plan = uniform_plan("int8_per_channel")
    return {
        "weights_only": evaluate(plan, texts),
        "per_tensor": evaluate(plan, texts, act_quant=act_int8_per_tensor),
        "per_token": evaluate(plan, texts, act_quant=act_int8_per_token),
    }


def act_int8_per_tensor(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantize activations ``(tokens, features)`` to INT8 with one scale for them all."""
    return fake_quantize(x, "int8")


def act_int8_per_token(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantize activations ``(tokens, features)`` to INT8 with one scale per token (row)."""
    return fake_quantize(x, "int8", group_size=x.shape[-1])


def keep_one_layer(scheme: str = "int8", layer: str = OUTLIER_LAYER, keep: str = "int8_per_channel",
                   texts: Optional[Sequence[str]] = None) -> dict[str, dict[str, float]]:
    """Compare all matrices in ``scheme`` with the same plan but ``layer`` in ``keep``: metrics and bytes."""
    plain = uniform_plan(scheme)
    kept = {**plain, layer: keep}
    return {name: {**evaluate(p, texts), "bytes": plan_bytes(p)} for name, p in (("all", plain), ("kept", kept))}


# ---------------------------------------------------------------------------------------------
# Stochastic rounding
# ---------------------------------------------------------------------------------------------

SR_STEPS = 1000  # updates per run: enough for round-to-nearest to lose 1000 x update entirely
SR_TRIALS = 2000  # independent stochastic runs: their mean is within ~1% of the exact sum
SR_UPDATE_FRACTION = 0.2  # each update is a fifth of the spacing above w0: below half a step, RTN drops it


def _grid(fmt: str) -> torch.Tensor:
    return torch.tensor(get_format(fmt).finite_values, dtype=torch.float64)


def round_stochastic(x: torch.Tensor, fmt: str, generator: torch.Generator) -> torch.Tensor:
    """Round ``x`` to one of its two neighbours in ``fmt``, up with probability (x - lo) / (hi - lo).

    The neighbours come from the format's list of finite values, so any format of <= 16 bits works;
    the expected result is ``x`` itself (unbiased), unlike round-to-nearest.
    """
    grid = _grid(fmt)
    x = x.double()
    i = (torch.searchsorted(grid, x, right=True) - 1).clamp(0, grid.numel() - 2)
    lo, hi = grid[i], grid[i + 1]
    up = torch.rand(x.shape, generator=generator, dtype=torch.float64) < (x - lo) / (hi - lo)
    return torch.where(x == lo, lo, torch.where(up, hi, lo))


def stochastic_rounding_demo(fmt: str = "bf16", w0: float = 1.0, steps: int = SR_STEPS, trials: int = SR_TRIALS,
                             update: Optional[float] = None, seed: int = 0) -> dict[str, float]:
    """Add ``update`` to a weight ``steps`` times, rounding to ``fmt`` after each addition.

    Returns ``exact`` (w0 + steps * update), ``nearest`` (round-to-nearest-even after every step: the
    update is lost whenever it is below half a step), ``stochastic_mean`` and ``stochastic_std`` (over
    ``trials`` independent runs with stochastic rounding), ``update`` and ``spacing`` (the step of
    ``fmt`` just above ``w0``). ``update`` defaults to :data:`SR_UPDATE_FRACTION` of that step.
    """
    grid = _grid(fmt)
    start = float(grid[torch.searchsorted(grid, torch.tensor(w0, dtype=torch.float64))])
    if start != w0:
        raise ValueError(f"stochastic_rounding_demo: w0={w0} is not a {fmt} value; pick one (e.g. 1.0)")
    spacing = float(grid[torch.searchsorted(grid, torch.tensor(w0, dtype=torch.float64), right=True)]) - w0
    update = SR_UPDATE_FRACTION * spacing if update is None else float(update)
    rtn = torch.tensor([w0], dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    sr = torch.full((trials,), w0, dtype=torch.float64)
    for _ in range(steps):
        rtn = fake_quantize(rtn + update, fmt, **({"per_tensor_scale": False} if get_format(fmt).bits <= 8 else {}))
        sr = round_stochastic(sr + update, fmt, gen)
    return {"exact": w0 + steps * update, "nearest": float(rtn[0]), "stochastic_mean": float(sr.mean()),
            "stochastic_std": float(sr.std()), "update": update, "spacing": spacing}


# ---------------------------------------------------------------------------------------------

def main() -> None:  # python -m labs.lab322.answers
    import time
    pub, hid = sentences("public"), sentences("hidden")
    t = time.perf_counter()
    fp32_embeddings(pub)
    print(f"FP32 encode of {len(pub)} sentences: {time.perf_counter() - t:.2f} s (first call, with loading)")
    fp32_bytes = plan_bytes(uniform_plan("fp32"))
    for label, texts in (("public", pub), ("hidden", hid)):
        print(f"\nAll 36 encoder matrices quantized, {len(texts)} {label} sentences:")
        print(f"{'scheme':<20} {'cosine':>8} {'worst':>8} {'rank corr':>9} {'top-1':>6} {'bytes':>10} {'vs FP32':>8}")
        for s, m in format_table(texts).items():
            print(f"{SCHEMES[s].label:<20} {m['cosine']:8.4f} {m['min_cosine']:8.4f} {m['rank_correlation']:9.4f} "
                  f"{m['top1']:6.3f} {m['bytes']:10d} {fp32_bytes / m['bytes']:7.2f}x")
    print("\nLayer sensitivity, INT8 per-tensor, one matrix at a time (worst 5):")
    for name, cos in layer_sensitivity("int8")[:5]:
        print(f"  {short_name(name):<12} cosine {cos:.4f}")
    k = keep_one_layer()
    print(f"\nINT8 per-tensor, all: cosine {k['all']['cosine']:.4f}, {k['all']['bytes']} B; "
          f"{short_name(OUTLIER_LAYER)} per-channel: {k['kept']['cosine']:.4f}, {k['kept']['bytes']} B")
    plan = reference_plan()
    counts = {s: sum(v == s for v in plan.values()) for s in PLAN_SCHEMES}
    int8pc = plan_bytes(uniform_plan("int8_per_channel"))
    print(f"\nReference plan: {plan_bytes(plan)} B (INT8 per-channel: {int8pc} B); "
          f"cosine public {evaluate(plan, pub)['cosine']:.4f}, hidden {evaluate(plan, hid)['cosine']:.4f}; "
          + ", ".join(f"{n} {SCHEMES[s].label}" for s, n in counts.items() if n))
    print("\nW8A8 (weights INT8 per-channel):")
    for key, m in w8a8(pub).items():
        print(f"  {key:<13} cosine {m['cosine']:.4f}  rank corr {m['rank_correlation']:.4f}  top-1 {m['top1']:.3f}")
    print("\nStochastic rounding:")
    for fmt in ("bf16", "fp8_e4m3fn"):
        d = stochastic_rounding_demo(fmt)
        print(f"  {fmt:<11} {SR_STEPS} x {d['update']:.3g} onto 1.0: exact {d['exact']:.4f}, "
              f"nearest {d['nearest']:.4f}, stochastic {d['stochastic_mean']:.4f} +- {d['stochastic_std']:.4f}")


if __name__ == "__main__":
    main()

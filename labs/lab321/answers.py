"""Lab 3.2.1's trusted answers for its exercises: SNR, the memory calculator and the advisor.

The memory rules (the notebook states the same ones, so a student can match them):

* Weights: ``params_billions * bytes_per_param`` GB, with decimal GB (1 GB = 1e9 bytes,
  as GPU spec sheets count; 128 GB of DGX Spark memory is 128e9 bytes). Bytes per
  parameter follow the lab: fp32 4, fp16/bf16 2, fp8/int8 1, fp4/int4/nvfp4 0.5.
  ``include_scale_overhead=True`` uses the format's ``bits_per_element / 8`` instead
  (nvfp4 4.5 bits, mxfp4 4.25, mxfp8 8.25).
* Inference: weights x 1.2. The 20% is a rule of thumb for the KV cache and activations at
  modest contexts; the KV cache alone is ``2 x layers x kv_heads x head_dim x seq_len x
  batch x bytes`` (:func:`kv_cache_gb`), which outgrows 20% at long contexts or large batches.
* Training with Adam, per parameter (activations left out: they depend on batch and sequence):
  - fp32: 4 (weights, which are the master copy) + 4 (gradients) + 8 (two FP32 moments) = 16 B;
  - any lower precision p: bytes(p) (the weights the model holds) + 2 (BF16 gradients) + 12
    (FP32 master weights and two FP32 Adam moments). bf16/fp16: 2 + 2 + 12 = 16 B, mixed-precision
    Adam as the ZeRO paper counts it (Rajbhandari et al. 2020, "2 + 2 + 12"); fp8: 1 + 2 + 12 = 15 B,
    FP8 training as NVIDIA Transformer Engine does it with weights stored only in FP8
    (``fp8_model_init``): GEMMs in FP8, gradients in BF16, FP32 master weights and moments in the
    optimizer. (Keeping BF16 weights next to their FP8 copy, TE's default, is 17 B.) FP8 saves
    compute, hardly memory: the 12 bytes of optimizer state dominate.
* A model fits when its memory is <= the budget.

The advisor climbs down a ladder of precisions, best quality first:

* inference: bf16 -> fp8 -> fp4 (BF16 baseline, FP8 E4M3, NVFP4-style FP4)
* training:  bf16 -> fp8 (BF16 mixed precision; FP8 when memory comes first). FP32 is not
  ranked above BF16 (same 16 B/param, slower); FP4 is never a training format.

``quality_priority`` picks where the search starts (:data:`PRIORITY_START`): inference
"quality" at bf16, "balanced" at fp8, "memory" at fp4; training "quality" and "balanced" at
bf16, "memory" at fp8. The answer is the first rung from there down that fits; when none
fits, the last rung, with ``fits=False``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from reference.formats import FORMATS, get_format

GB = 1e9
INFERENCE_OVERHEAD = 1.2  # weights + 20% for KV cache and activations (rule of thumb, modest contexts)
# Training with Adam, bytes per parameter besides the weights (activations left out):
TRAINING_GRAD_BYTES = 2.0  # BF16 gradients (fp32 training: 4, FP32 gradients)
TRAINING_OPTIMIZER_BYTES = 12.0  # FP32 master weights (4) + two FP32 Adam moments (4 + 4)
FP32_TRAINING_BYTES = 16.0  # 4 weights (= master copy) + 4 gradients + 8 moments

# The lab's bytes-per-parameter table (storage of the elements only, no scale overhead).
BYTES_PER_PARAM = {
    "fp32": 4.0, "fp16": 2.0, "bf16": 2.0,
    "fp8": 1.0, "int8": 1.0,
    "fp4": 0.5, "int4": 0.5, "nvfp4": 0.5, "mxfp4": 0.5,
}
# Precisions the Exercise 2 table reports, in this order.
ANALYSIS_PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")
# Exercise answers that count the scales too (the lab's "scale overhead" of Part 5) are accepted as
# well: fp4 as NVFP4 (4.5 bits) or MXFP4 (4.25), int4 with an FP16 scale (and zero point) per 128.
ACCEPTED_BYTES = {
    **{k: (v,) for k, v in BYTES_PER_PARAM.items()},
    "fp4": (0.5, 4.5 / 8, 4.25 / 8),
    "int4": (0.5, 4.125 / 8, 4.25 / 8),
}
LADDERS = {"inference": ("bf16", "fp8", "fp4"), "training": ("bf16", "fp8")}
# Where each priority starts on the task's ladder.
PRIORITY_START = {"inference": {"quality": 0, "balanced": 1, "memory": 2},
                  "training": {"quality": 0, "balanced": 0, "memory": 1}}
PRIORITIES = ("quality", "balanced", "memory")


# SNR: the shared measure (reference.snr.calculate_snr) is this lab's answer to Exercise 3
from reference.snr import calculate_snr  # noqa: E402,F401


# ----------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------

def _check_size(params_billions: Any) -> float:
    if isinstance(params_billions, bool) or not isinstance(params_billions, (int, float)) or math.isnan(params_billions):
        raise TypeError(f"params_billions must be a number of parameters in billions (e.g. 70), got {params_billions!r}")
    if params_billions < 0 or math.isinf(params_billions):
        raise ValueError(f"params_billions must be a finite number >= 0, got {params_billions!r}")
    return float(params_billions)


def _check_budget(budget: Any) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or math.isnan(budget):
        raise TypeError(f"memory_budget_gb must be a number of GB (e.g. 128), got {budget!r}")
    if budget <= 0:
        raise ValueError(f"memory_budget_gb must be > 0 GB, got {budget!r}")
    return float(budget)


def _check_task(task: Any) -> str:
    if task not in LADDERS:
        raise ValueError(f"task must be one of {', '.join(map(repr, LADDERS))}, got {task!r}")
    return task


def bytes_per_param(precision: str, include_scale_overhead: bool = False) -> float:
    """Bytes one parameter takes at ``precision`` (lab table; scale overhead optional)."""
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a string such as 'fp16', got {type(precision).__name__}")
    key = precision.lower()
    if include_scale_overhead or key not in BYTES_PER_PARAM:
        try:
            return get_format(key).bits_per_element / 8
        except ValueError:
            valid = sorted(set(BYTES_PER_PARAM) | set(FORMATS))
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(valid)}") from None
    return BYTES_PER_PARAM[key]


def calculate_model_memory(params_billions: float, precision: str, include_scale_overhead: bool = False) -> float:
    """Return the memory of a model's weights in GB (1 GB = 1e9 bytes)."""
    return _check_size(params_billions) * bytes_per_param(precision, include_scale_overhead)


def training_bytes_per_param(precision: str, weight_bytes: float | None = None) -> float:
    """Bytes per parameter of Adam training at ``precision`` (activations left out).

    fp32: 16 (4 weights = master copy + 4 gradients + 8 moments). Lower precisions:
    weight bytes + 2 (BF16 gradients) + 12 (FP32 master weights and two moments).
    ``weight_bytes`` overrides the weights' bytes (e.g. fp4 counted with its scales).
    """
    b = bytes_per_param(precision) if weight_bytes is None else float(weight_bytes)
    if precision.lower() == "fp32":
        return FP32_TRAINING_BYTES
    return b + TRAINING_GRAD_BYTES + TRAINING_OPTIMIZER_BYTES


def task_memory(params_billions: float, precision: str, task: str = "inference",
                bytes_per_param_table: dict | None = None) -> float:
    """Return the memory a task needs in GB: weights x 1.2 (inference), or the weights plus
    gradients, master weights and Adam moments (training, :func:`training_bytes_per_param`).

    ``bytes_per_param_table`` overrides the bytes per parameter of the weights (the grader
    uses it to accept answers that count scale overhead).
    """
    size = _check_size(params_billions)
    _check_task(task)
    b = None
    if bytes_per_param_table and precision.lower() in bytes_per_param_table:
        b = bytes_per_param_table[precision.lower()]
    if task == "inference":
        return size * (bytes_per_param(precision) if b is None else b) * INFERENCE_OVERHEAD
    return size * training_bytes_per_param(precision, b)


def kv_cache_gb(layers: int, kv_heads: int, head_dim: int, seq_len: int, batch: int = 1,
                bytes_per_value: float = 2.0) -> float:
    """KV cache of a decoder in GB: 2 (K and V) x layers x kv_heads x head_dim x seq_len x batch x bytes."""
    for name, v in (("layers", layers), ("kv_heads", kv_heads), ("head_dim", head_dim), ("seq_len", seq_len),
                    ("batch", batch), ("bytes_per_value", bytes_per_value)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")
    return 2 * layers * kv_heads * head_dim * seq_len * batch * bytes_per_value / GB


def analyze_model_memory(params_billions: float, memory_budget_gb: float = 128, task: str = "inference",
                         bytes_per_param_table: dict | None = None) -> dict:
    """Exercise 2: memory and fit of every precision, plus a recommendation.

    Returns ``{"precisions": {name: {"memory_gb": float, "fits": bool}}, "recommendation": str | None}``.
    The recommendation is the first rung of the task's ladder (quality first) that fits, or
    None when nothing fits.
    """
    size = _check_size(params_billions)
    budget = _check_budget(memory_budget_gb)
    _check_task(task)
    table = {}
    for p in ANALYSIS_PRECISIONS:
        mem = task_memory(size, p, task, bytes_per_param_table)
        table[p] = {"memory_gb": mem, "fits": mem <= budget}
    rec = next((p for p in LADDERS[task] if table[p]["fits"]), None)
    return {"precisions": table, "recommendation": rec}


def recommend_precision(
    model_params_billions: float,
    memory_budget_gb: float = 128,
    task: str = "inference",
    quality_priority: str = "balanced",
    bytes_per_param_table: dict | None = None,
) -> dict:
    """Recommend a precision; return ``{"precision", "memory_gb", "fits", "reasoning"}``."""
    size = _check_size(model_params_billions)
    budget = _check_budget(memory_budget_gb)
    ladder = LADDERS[_check_task(task)]
    if quality_priority not in PRIORITIES:
        raise ValueError(f"quality_priority must be one of {', '.join(map(repr, PRIORITIES))}, got {quality_priority!r}")
    start = PRIORITY_START[task][quality_priority]
    for p in ladder[start:]:
        mem = task_memory(size, p, task, bytes_per_param_table)
        if mem <= budget:
            why = (f"{p.upper()} needs {mem:.1f} GB for {task} of a {size:g}B model, within the "
                   f"{budget:g} GB budget; it is the highest-quality option for priority '{quality_priority}'.")
            return {"precision": p, "memory_gb": mem, "fits": True, "reasoning": why}
    p = ladder[-1]
    mem = task_memory(size, p, task, bytes_per_param_table)
    why = (f"Even {p.upper()} needs {mem:.1f} GB for {task} of a {size:g}B model, more than the "
           f"{budget:g} GB budget: use more memory, a smaller model, or offloading.")
    return {"precision": p, "memory_gb": mem, "fits": False, "reasoning": why}

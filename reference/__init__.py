"""Trusted reference implementations of every number format in Lab 3.2.1.

Graders score students against this package; it imports nothing from ``grader`` or
``assignments``.
"""

from .formats import ALIASES, FORMATS, BlockFormat, FloatFormat, IntFormat, canonical_name, get_format
from .hardware import (
    arch_name, current_capability, describe_device, hardware_formats, native_formats, torch_native_formats,
)
from .lab import (
    analyze_model_memory,
    bytes_per_param,
    calculate_model_memory,
    calculate_snr,
    recommend_precision,
    kv_cache_gb,
    task_memory,
    training_bytes_per_param,
)
from .quantize import Quantized, cast, dequantize, fake_quantize, pack_fp4, quantize, unpack_fp4

__all__ = [
    "ALIASES", "FORMATS", "BlockFormat", "FloatFormat", "IntFormat", "Quantized", "canonical_name",
    "analyze_model_memory", "arch_name", "bytes_per_param", "calculate_model_memory", "calculate_snr",
    "cast", "current_capability", "dequantize", "describe_device", "fake_quantize", "get_format",
    "hardware_formats", "kv_cache_gb", "native_formats", "pack_fp4", "quantize", "recommend_precision", "task_memory",
    "torch_native_formats", "training_bytes_per_param", "unpack_fp4",
]

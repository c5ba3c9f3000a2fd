"""Trusted reference implementations of the number formats, shared by the labs (each lab's own
answers live with the lab: labs/<id>/answers.py).

Graders score students against this package; it imports nothing from ``grader`` or
``assignments``.
"""

from .formats import ALIASES, FORMATS, BlockFormat, FloatFormat, IntFormat, canonical_name, get_format
from .hardware import (
    arch_name, current_capability, describe_device, hardware_formats, native_formats, torch_native_formats,
)
from .snr import calculate_snr
from .quantize import Quantized, cast, dequantize, fake_quantize, pack_fp4, quantize, unpack_fp4

__all__ = [
    "ALIASES", "FORMATS", "BlockFormat", "FloatFormat", "IntFormat", "Quantized", "canonical_name",
    "arch_name", "calculate_snr", "cast", "current_capability", "dequantize", "describe_device", "fake_quantize", "get_format",
    "hardware_formats", "native_formats", "pack_fp4", "quantize", "torch_native_formats", "unpack_fp4",
]

"""Which GPUs run which formats natively (DESIGN §3), and a description of this machine."""

from __future__ import annotations

from typing import Optional

import torch

# Compute capability -> formats with tensor-core support through PyTorch.
# Sources: PyTorch's scaled_mm capability checks and NVIDIA's architecture docs (DESIGN §3).
FP8_FORMATS = ("fp8_e4m3", "fp8_e5m2")
FP4_FORMATS = ("nvfp4", "mxfp4", "fp4_e2m1")
BASE_FORMATS = ("fp32", "fp16", "bf16", "int8")


def native_formats(capability: Optional[tuple[int, int]]) -> tuple[str, ...]:
    """Return the formats a GPU of compute capability ``(major, minor)`` runs natively.

    ``None`` means no GPU: nothing runs natively on tensor cores, everything is emulated.
    Ada (8.9) and Hopper (9.0) have FP8; data-centre Blackwell (10.x) has FP8, MXFP8 and
    FP4; consumer Blackwell (12.0) and DGX Spark (12.1) have FP8 and NVFP4 (PyTorch's
    MXFP4 path checks for 10.x only).
    """
    if capability is None:
        return ()
    major, minor = int(capability[0]), int(capability[1])
    fmts = list(BASE_FORMATS) if major >= 8 else ["fp32", "fp16", "int8"]
    if (major, minor) >= (8, 9):
        fmts += FP8_FORMATS
    if major == 10 or major == 11:
        fmts += ("mxfp8", "nvfp4", "mxfp4", "fp4_e2m1")
    elif major >= 12:
        fmts += ("nvfp4", "fp4_e2m1")
    return tuple(fmts)


ARCH_NAMES = {
    (7, 0): "Volta", (7, 5): "Turing", (8, 0): "Ampere", (8, 6): "Ampere", (8, 7): "Ampere",
    (8, 9): "Ada Lovelace", (9, 0): "Hopper", (10, 0): "Blackwell (B200)", (10, 3): "Blackwell (B300)",
    (12, 0): "Blackwell (RTX 50)", (12, 1): "Blackwell (DGX Spark GB10)",
}


def arch_name(capability: Optional[tuple[int, int]]) -> str:
    if capability is None:
        return "CPU only"
    return ARCH_NAMES.get(tuple(capability), f"compute capability {capability[0]}.{capability[1]}")


def current_capability() -> Optional[tuple[int, int]]:
    """Compute capability of CUDA device 0, or None without a usable GPU."""
    try:
        if torch.cuda.is_available():
            return tuple(torch.cuda.get_device_capability(0))
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU" for our purposes
        return None
    return None


def describe_device(capability: Optional[tuple[int, int]] = None, name: Optional[str] = None) -> dict:
    """Describe a device: name, capability, native formats and what runs emulated.

    Without arguments, describes this machine (``CPU only`` is a valid answer). Pass a
    capability (and a name) to describe another GPU, e.g. ``describe_device((8, 9), "L40")``.
    """
    from .formats import FORMATS

    if capability is None and name is None:
        capability = current_capability()
        name = torch.cuda.get_device_name(0) if capability is not None else "CPU"
    native = native_formats(capability)
    emulated = tuple(f for f in FORMATS if f not in native)
    cc = None if capability is None else f"{capability[0]}.{capability[1]}"
    return {
        "device": name or arch_name(capability),
        "architecture": arch_name(capability),
        "compute_capability": cc,
        "native": native,
        "emulated": emulated,
    }

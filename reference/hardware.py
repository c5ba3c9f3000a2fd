"""Which GPUs have which formats (DESIGN §3): what the silicon has, what PyTorch runs natively.

Two questions with different answers, so two functions:

* :func:`hardware_formats` -- the input formats of a GPU's tensor-core matrix instructions,
  from NVIDIA's architecture documents (one source per row below).
* :func:`torch_native_formats` -- what PyTorch runs natively on that GPU: a matmul kernel for
  the format (``torch.mm`` for fp16/bf16/fp32, ``torch._int_mm`` for int8,
  ``torch._scaled_mm`` for FP8, NVFP4 and MX), everything else being emulated in software.

They differ: Hopper and Ada have INT4/FP8 silicon that PyTorch has no INT4 matmul for;
RTX 50 (12.0) and DGX Spark (12.1) have block-scaled MXFP8/MXFP6/MXFP4 tensor-core MMA like
B200; PyTorch runs MXFP8 and NVFP4 there, but its MXFP4 path is for 10.x only. :func:`native_formats`
(what the notebook's environment table shows) is the PyTorch answer.
"""

from __future__ import annotations

import re
from typing import Optional

import torch

FP8_FORMATS = ("fp8_e4m3fn", "fp8_e5m2")
FP4_FORMATS = ("nvfp4", "mxfp4", "fp4_e2m1fn")
BASE_FORMATS = ("fp32", "fp16", "bf16", "int8")

# ---- What the silicon has ---------------------------------------------------------------
# Tensor-core (MMA) input formats by compute capability. Names follow reference.FORMATS;
# "tf32", "fp6_e2m3", "fp6_e3m2" and "mxfp6" are hardware formats the lab does not model.
# FP64 and INT1 tensor-core modes are left out (not lab formats). FP32 is never a tensor-core
# input: its matmuls run on CUDA cores, or as TF32 on tensor cores (Ampere and later).
_AMPERE = ("tf32", "fp16", "bf16", "int8", "int4")
_BLOCK_SCALED = ("fp6_e3m2", "fp6_e2m3", "fp4_e2m1fn", "mxfp8", "mxfp6", "mxfp4", "nvfp4")
_HOPPER = ("tf32", "fp16", "bf16", "int8", *FP8_FORMATS)
HARDWARE_FORMATS: dict[tuple[int, int], tuple[str, ...]] = {
    # Volta V100: FP16 tensor cores only (no INT8 tensor cores; INT8 runs as DP4A on CUDA cores).
    # NVIDIA Tesla V100 GPU Architecture whitepaper (2017), "Tensor Cores".
    (7, 0): ("fp16",),
    # Turing: FP16, INT8, INT4 (and experimental INT1) tensor cores.
    # NVIDIA Turing GPU Architecture whitepaper (2018), "Turing Tensor Cores".
    (7, 5): ("fp16", "int8", "int4"),
    # Ampere GA100 / GA10x / Orin: TF32, FP16, BF16, INT8, INT4 (plus FP64 on GA100, INT1).
    # NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020); NVIDIA Ampere GA102 GPU
    # Architecture whitepaper (2020); PTX ISA, "mma" (.s4/.u4 from sm_80).
    (8, 0): _AMPERE, (8, 6): _AMPERE, (8, 7): _AMPERE,
    # Ada: Ampere's formats plus FP8 E4M3/E5M2 (4th-gen tensor cores, like Hopper's).
    # NVIDIA Ada GPU Architecture whitepaper (2022), "Fourth-Generation Tensor Cores".
    (8, 9): (*_AMPERE, *FP8_FORMATS),
    # Hopper: TF32, FP16, BF16, INT8, FP8 (plus FP64); no INT4 tensor cores.
    # NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022), "H100 Tensor Core".
    (9, 0): _HOPPER,
    # Blackwell B200/GB200: Hopper's formats plus FP6 and FP4, unscaled (tcgen05.mma
    # kind::f8f6f4) and block-scaled: MXFP8/MXFP6/MXFP4 with E8M0 scales per 32
    # (kind::mxf8f6f4.block_scale, kind::mxf4) and NVFP4 with E4M3 scales per 16
    # (kind::mxf4nvf4.block_scale). PTX ISA 8.7+, "tcgen05.mma"; NVIDIA Blackwell
    # Architecture Technical Brief (2024).
    (10, 0): (*_HOPPER, *_BLOCK_SCALED),
    # Blackwell Ultra B300/GB300: as B200 but without INT8 tensor-core throughput (0.15 dense
    # INT8 POPS against B200's 4.5; PTX ISA lists tcgen05 kind::i8 for sm_100a/sm_101a/
    # sm_110a, not sm_103a). NVIDIA HGX B300 datasheet (2025).
    (10, 3): tuple(f for f in (*_HOPPER, *_BLOCK_SCALED) if f != "int8"),
    # RTX 50 (GB20x) and DGX Spark (GB10): the same block-scaled formats through warp-level
    # mma.sync (kind::f8f6f4, kind::mxf8f6f4.block_scale, kind::mxf4nvf4.block_scale; no
    # tcgen05). PTX ISA 8.7+, "mma" (sm_120a/sm_121a); NVIDIA RTX Blackwell GPU Architecture
    # whitepaper (2025). INT4 tensor cores are not listed for RTX Blackwell.
    (12, 0): (*_HOPPER, *_BLOCK_SCALED), (12, 1): (*_HOPPER, *_BLOCK_SCALED),
}


def _row(table: dict, capability: tuple[int, int]):
    """The table row of ``capability``, else the nearest lower minor of the same major."""
    major, minor = int(capability[0]), int(capability[1])
    rows = [cc for cc in table if cc[0] == major and cc[1] <= minor]
    return table[max(rows)] if rows else None


def hardware_formats(capability: Optional[tuple[int, int]]) -> tuple[str, ...]:
    """Return the tensor-core input formats of a GPU of compute capability ``(major, minor)``.

    What the silicon has, whatever software runs on it (see :data:`HARDWARE_FORMATS` for the
    source of each row). ``None`` (no GPU) gives ``()``. A capability not in the table uses
    the nearest lower minor version of the same major, else ``()`` (unknown).
    """
    if capability is None:
        return ()
    return _row(HARDWARE_FORMATS, capability) or ()


# ---- What PyTorch runs natively -----------------------------------------------------------
# The kernels behind each format, and where PyTorch's own source allows them:
#   fp32, fp16          torch.mm (cuBLAS), every CUDA GPU
#   bf16                torch.mm, compute capability >= 8.0 (torch.cuda.is_bf16_supported)
#   int8                torch._int_mm (cuBLASLt int8 GEMM)
#   fp8_e4m3fn, fp8_e5m2 torch._scaled_mm, tensor-wise scales: 8.9 or >= 9.0
#                       (aten/src/ATen/native/cuda/ScaledBlasDeviceUtils.cpp,
#                       scaled_mm_arch_allowed); PyTorch >= 2.1
#   nvfp4, fp4_e2m1fn   torch._scaled_mm on float4_e2m1fn_x2 with E4M3 block scales per 16
#                       (cuBLASLt VEC16_UE4M3, CUDA >= 12.8): 10.x and 12.x. Plain E2M1 with
#                       one tensor scale is NVFP4 with all block scales 1.0. PyTorch >= 2.8
#   mxfp8               torch._scaled_mm with E8M0 block scales per 32 (cuBLASLt VEC32_UE8M0):
#                       10.x and 12.x. Its path (_scaled_mxfp8_mxfp8 in ScaledBlas.cpp) checks no
#                       architecture beyond _scaled_mm's own (8.9 / 9.0+); PyTorch's tests gate MX
#                       GEMM on SM100OrLater (torch/testing/_internal/common_cuda.py,
#                       PLATFORM_SUPPORTS_MX_GEMM), which includes 12.x. PyTorch >= 2.8 on 10.x;
#                       on 12.x we claim it from 2.12, the first release reported running it there
#   mxfp4               torch._scaled_mm, E2M1 with E8M0 scales per 32: 10.x only
#                       (_check_mxfp4_support: major == 10, "MXFP4 scaling only supported in CUDA
#                       for B200/B300"), although 12.x silicon has block-scaled MXFP4 MMA
#   int4                no PyTorch matmul on INT4 tensor cores (torch._weight_int4pack_mm
#                       dequantizes to bf16), so emulated everywhere
MIN_TORCH = {"fp8": (2, 1), "nvfp4": (2, 8), "mx": (2, 8), "mxfp8_sm12x": (2, 12)}


def _version(v: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", v)
    if not m:
        raise ValueError(f"torch_version must look like '2.8' or '2.8.0+cu128', got {v!r}")
    return int(m.group(1)), int(m.group(2))


def _installed_torch_has(feature: str) -> bool:
    """Whether the installed PyTorch has the dtypes and op a feature needs (and, on a CUDA
    build, a CUDA toolkit new enough for block scales: 12.8)."""
    need = {"fp8": ("_scaled_mm", "float8_e4m3fn", "float8_e5m2"),
            "nvfp4": ("_scaled_mm", "float4_e2m1fn_x2", "float8_e4m3fn"),
            "mx": ("_scaled_mm", "float4_e2m1fn_x2", "float8_e8m0fnu"),
            "mxfp8_sm12x": ("_scaled_mm", "float8_e4m3fn", "float8_e8m0fnu")}[feature]
    if not all(hasattr(torch, n) for n in need):
        return False
    if feature == "mxfp8_sm12x" and _version(torch.__version__) < MIN_TORCH[feature]:
        return False
    cuda = getattr(torch.version, "cuda", None)
    if feature != "fp8" and cuda:
        return _version(cuda) >= (12, 8)
    return True


def torch_native_formats(capability: Optional[tuple[int, int]], torch_version: Optional[str] = None
                         ) -> tuple[str, ...]:
    """Return the formats PyTorch runs natively (not emulated) on a GPU of this capability.

    ``torch_version=None`` asks about the installed PyTorch (its dtypes and CUDA toolkit);
    a version string such as ``"2.8"`` asks about that release (:data:`MIN_TORCH`);
    ``"latest"`` ignores versions. ``None`` as capability (no GPU) gives ``()``.
    """
    if capability is None:
        return ()
    if torch_version is None:
        has = _installed_torch_has
    elif torch_version == "latest":
        def has(feature: str) -> bool:
            return True
    else:
        v = _version(torch_version)

        def has(feature: str) -> bool:
            return v >= MIN_TORCH[feature]
    major, minor = int(capability[0]), int(capability[1])
    fmts = list(BASE_FORMATS) if major >= 8 else ["fp32", "fp16", "int8"]
    if (major, minor) >= (8, 9) and has("fp8"):
        fmts += FP8_FORMATS
    if major in (10, 11):
        if has("mx"):
            fmts.append("mxfp8")
        if has("nvfp4"):
            fmts.append("nvfp4")
        if has("mx"):
            fmts.append("mxfp4")
        if has("nvfp4"):
            fmts.append("fp4_e2m1fn")
    elif major >= 12:
        if has("mx") and has("mxfp8_sm12x"):
            fmts.append("mxfp8")
        if has("nvfp4"):
            fmts += ("nvfp4", "fp4_e2m1fn")
    return tuple(fmts)


def native_formats(capability: Optional[tuple[int, int]]) -> tuple[str, ...]:
    """Return the formats current PyTorch runs natively on a GPU of capability ``(major, minor)``.

    The notebook's environment table: ``torch_native_formats(capability, "latest")``, the
    same answer on every machine. ``None`` means no GPU: nothing runs natively, everything is
    emulated. Ada (8.9) and Hopper (9.0) run FP8; data-centre Blackwell (10.x) runs FP8,
    MXFP8 and FP4; RTX 50 (12.0) and DGX Spark (12.1) run FP8 and NVFP4 (their silicon has
    MX block scaling too, see :func:`hardware_formats`; PyTorch's MX path targets 10.x).
    """
    return torch_native_formats(capability, "latest")


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
    ``native``/``emulated`` are :func:`native_formats` (current PyTorch); ``hardware`` is
    :func:`hardware_formats` and ``hardware_only`` what the silicon has that PyTorch does
    not run natively (lab formats only).
    """
    from .formats import FORMATS

    if capability is None and name is None:
        capability = current_capability()
        name = torch.cuda.get_device_name(0) if capability is not None else "CPU"
    native = native_formats(capability)
    hardware = hardware_formats(capability)
    emulated = tuple(f for f in FORMATS if f not in native)
    cc = None if capability is None else f"{capability[0]}.{capability[1]}"
    return {
        "device": name or arch_name(capability),
        "architecture": arch_name(capability),
        "compute_capability": cc,
        "native": native,
        "emulated": emulated,
        "hardware": hardware,
        "hardware_only": tuple(f for f in hardware if f in FORMATS and f not in native),
    }

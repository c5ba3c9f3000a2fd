"""What each GPU's silicon has, what PyTorch runs natively, and the notebook's table."""

import pytest
import torch

import reference as R
from helpers import solution_cells

LAB_BLOCK = {"fp4_e2m1fn", "mxfp8", "mxfp4", "nvfp4"}
FP6 = {"fp6_e3m2", "fp6_e2m3", "mxfp6"}

# Tensor-core input formats, from NVIDIA's architecture whitepapers and the PTX ISA (issue 10).
HARDWARE = {
    (7, 0): {"fp16"},  # Volta: FP16 only, no INT8 tensor cores
    (7, 5): {"fp16", "int8", "int4"},  # Turing
    (8, 0): {"tf32", "fp16", "bf16", "int8", "int4"},  # Ampere: TF32, not "fp32"
    (8, 6): {"tf32", "fp16", "bf16", "int8", "int4"},
    (8, 9): {"tf32", "fp16", "bf16", "int8", "int4", "fp8_e4m3fn", "fp8_e5m2"},  # Ada has FP8 too
    (9, 0): {"tf32", "fp16", "bf16", "int8", "fp8_e4m3fn", "fp8_e5m2"},  # Hopper: no INT4
    (10, 0): {"tf32", "fp16", "bf16", "int8", "fp8_e4m3fn", "fp8_e5m2"} | FP6 | LAB_BLOCK,
    (10, 3): {"tf32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"} | FP6 | LAB_BLOCK,  # B300: INT8 cut
    (12, 0): {"tf32", "fp16", "bf16", "int8", "fp8_e4m3fn", "fp8_e5m2"} | FP6 | LAB_BLOCK,  # block-scaled MMA too
    (12, 1): {"tf32", "fp16", "bf16", "int8", "fp8_e4m3fn", "fp8_e5m2"} | FP6 | LAB_BLOCK,
}

# What PyTorch runs natively (torch.mm, torch._int_mm, torch._scaled_mm), current releases.
BASE = {"fp32", "fp16", "bf16", "int8"}
TORCH = {
    (7, 0): {"fp32", "fp16", "int8"}, (7, 5): {"fp32", "fp16", "int8"},
    (8, 0): BASE, (8, 6): BASE,
    (8, 9): BASE | {"fp8_e4m3fn", "fp8_e5m2"}, (9, 0): BASE | {"fp8_e4m3fn", "fp8_e5m2"},
    (10, 0): BASE | {"fp8_e4m3fn", "fp8_e5m2"} | LAB_BLOCK, (10, 3): BASE | {"fp8_e4m3fn", "fp8_e5m2"} | LAB_BLOCK,
    # MXFP8 yes (no architecture check in its _scaled_mm path), MXFP4 no (_check_mxfp4_support: major == 10)
    (12, 0): BASE | {"fp8_e4m3fn", "fp8_e5m2", "mxfp8", "nvfp4", "fp4_e2m1fn"},
    (12, 1): BASE | {"fp8_e4m3fn", "fp8_e5m2", "mxfp8", "nvfp4", "fp4_e2m1fn"},
}


@pytest.mark.parametrize("cc", sorted(HARDWARE))
def test_hardware_row(cc):
    got = R.hardware_formats(cc)
    assert set(got) == HARDWARE[cc] and len(got) == len(set(got))
    assert "fp32" not in got  # FP32 matmuls run on CUDA cores (or as TF32)


@pytest.mark.parametrize("cc", sorted(TORCH))
def test_torch_native_row(cc):
    assert set(R.torch_native_formats(cc, "latest")) == TORCH[cc]
    assert R.torch_native_formats(cc, "latest") == R.native_formats(cc)


def test_what_pytorch_lacks_but_the_silicon_has():
    assert "int4" in R.hardware_formats((8, 9)) and "int4" not in R.native_formats((8, 9))
    for cc in [(12, 0), (12, 1)]:
        d = R.describe_device(cc, "simulated")
        assert d["hardware_only"] == ("mxfp4",), d
    assert R.describe_device((10, 0), "B200")["hardware_only"] == ()


def test_unknown_minor_versions_use_the_nearest_lower_row_and_unknown_majors_nothing():
    assert R.hardware_formats((8, 7)) == R.hardware_formats((8, 6))
    assert R.hardware_formats((9, 5)) == R.hardware_formats((9, 0))
    assert R.hardware_formats((10, 1)) == R.hardware_formats((10, 0))
    assert R.hardware_formats((6, 1)) == () and R.hardware_formats(None) == ()
    assert R.torch_native_formats(None) == () and R.native_formats(None) == ()


@pytest.mark.parametrize("version, cc, has, lacks", [
    ("2.0", (9, 0), set(), {"fp8_e4m3fn"}),  # torch._scaled_mm arrived in 2.1
    ("2.1", (9, 0), {"fp8_e4m3fn", "fp8_e5m2"}, set()),
    ("2.7", (10, 0), {"fp8_e4m3fn"}, {"nvfp4", "mxfp4", "mxfp8", "fp4_e2m1fn"}),
    ("2.8.0+cu128", (10, 0), LAB_BLOCK, set()),
    ("2.8", (12, 1), {"nvfp4", "fp4_e2m1fn"}, {"mxfp8", "mxfp4"}),  # MXFP8 on 12.x: claimed from 2.12
    ("2.12", (12, 1), {"nvfp4", "fp4_e2m1fn", "mxfp8"}, {"mxfp4"}),
])
def test_torch_native_by_version(version, cc, has, lacks):
    got = set(R.torch_native_formats(cc, version))
    assert has <= got and not (lacks & got)


def test_installed_torch_answer():
    """This PyTorch has the FP8/FP4/E8M0 dtypes, so it runs what current releases run."""
    for cc in TORCH:
        assert R.torch_native_formats(cc) == R.native_formats(cc)
    with pytest.raises(ValueError, match="torch_version"):
        R.torch_native_formats((9, 0), "nightly")


def test_installed_torch_without_fp4_dtype(monkeypatch):
    monkeypatch.delattr(torch, "float4_e2m1fn_x2")
    assert set(R.torch_native_formats((10, 0))) == BASE | {"fp8_e4m3fn", "fp8_e5m2"}


def test_block_scales_need_cuda_12_8(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    assert "nvfp4" not in R.torch_native_formats((10, 0)) and "fp8_e4m3fn" in R.torch_native_formats((10, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert "nvfp4" in R.torch_native_formats((10, 0))


@pytest.fixture(scope="module")
def notebook_native_formats():
    src = next(s for _, s in solution_cells() if "def native_formats" in s)
    ns: dict = {}
    exec(compile(src.split("if torch.cuda.is_available()")[0], "<environment cell>", "exec"), ns)
    return ns["native_formats"]


@pytest.mark.parametrize("cc", sorted(TORCH) + [None])
def test_native_formats_is_still_the_notebook_table(notebook_native_formats, cc):
    # the notebook teaches with the lab's short names (fp8_e4m3), aliases of reference's names
    assert R.native_formats(cc) == tuple(R.canonical_name(n) for n in notebook_native_formats(cc))

"""GPU lanes: which run where (simulated capabilities), CPU lane for real, honest skips,
hardware-true matmul bounds, and the reference-on-CUDA check (CUDA emulated on CPU)."""

import importlib
import subprocess
import sys

import pytest
import torch

import reference as R
from grader.course import device
from helpers import solution_cells
from test_reference_device_arith import CudaScalarDivision

# capability -> (fp8-native lane runs, fp4-native lane runs)
CAPS = {
    (7, 0): (False, False), (8, 0): (False, False), (8, 6): (False, False), (8, 9): (True, False),
    (9, 0): (True, False), (10, 0): (True, True), (10, 3): (True, True), (12, 0): (True, True),
    (12, 1): (True, True),
}


@pytest.mark.parametrize("cc", sorted(CAPS))
def test_lane_plan_by_capability(cc):
    fp8, fp4 = CAPS[cc]
    p = device.plan(cc, has_cuda=True)
    assert p["cpu"][0] is True
    assert p["fp8-native"][0] is fp8 and p["fp4-native"][0] is fp4
    if not fp8:
        assert "8.9" in p["fp8-native"][1]
    if not fp4:
        assert "10.x or 12.x" in p["fp4-native"][1]


def test_fp4_lane_says_it_has_not_run_on_blackwell_yet():
    assert device.FP4_LANE_FIRST_RUN is None  # set it (and this test) when a Blackwell run passes
    for cc in [(10, 0), (12, 1)]:
        assert "not yet run on Blackwell hardware" in device.plan(cc, has_cuda=True)["fp4-native"][1]


def test_plan_chooses_by_what_this_pytorch_runs_and_names_the_hardware():
    p = device.plan((8, 9), has_cuda=True, torch_version="2.0")  # before torch._scaled_mm
    assert p["fp8-native"][0] is False and "has FP8 tensor cores, but PyTorch 2.0" in p["fp8-native"][1]
    p = device.plan((12, 1), has_cuda=True, torch_version="2.6")
    assert p["fp8-native"][0] is True
    assert p["fp4-native"][0] is False and "has NVFP4 tensor cores, but PyTorch 2.6" in p["fp4-native"][1]


@pytest.mark.parametrize("cc", sorted(CAPS))
def test_device_check_simulated(cc, monkeypatch):
    """`python -m grader device-check --simulate X.Y`, in process (the cpu lane stubbed: it is
    tested for real below)."""
    real = device.run_lane
    monkeypatch.setattr(device, "run_lane",
                        lambda name: device.LaneResult(name, "passed", 1) if name == "cpu" else real(name))
    lines: list[str] = []
    assert device.device_check(simulate=cc, out=lines.append) == 0
    text = "\n".join(lines)
    fp8, fp4 = CAPS[cc]
    hw = next(line for line in lines if line.startswith("tensor-core formats of the hardware:"))
    assert ", ".join(R.hardware_formats(cc)) in hw
    assert ("lane fp8-native: would run" in text) is fp8 and ("lane fp8-native: skipped" in text) is not fp8
    assert ("lane fp4-native: would run" in text) is fp4 and ("lane fp4-native: skipped" in text) is not fp4
    assert ("in the hardware but not native in this PyTorch (emulated): mxfp4" in text) is (cc[0] == 12)


def test_plan_without_gpu_says_why():
    p = device.plan(None, has_cuda=False)
    assert p["fp8-native"] == (False, "needs compute capability >= 8.9 (Ada, Hopper, Blackwell); no CUDA GPU on this machine")
    assert p["fp4-native"][0] is False and "no CUDA GPU" in p["fp4-native"][1]


@pytest.fixture(scope="module")
def env_cell():
    src = next(s for _, s in solution_cells() if "def environment_report" in s)
    ns: dict = {}
    exec(compile(src.split("if torch.cuda.is_available()")[0], "<environment cell>", "exec"), ns)
    return ns


@pytest.mark.parametrize("cc", sorted(CAPS))
def test_notebook_environment_check_simulated(env_cell, cc):
    text = env_cell["environment_report"](cc, "simulated GPU")
    native_line = next(l for l in text.splitlines() if l.startswith("Native formats:"))
    emulated_line = next(l for l in text.splitlines() if l.startswith("Emulated here:"))
    fp8, fp4 = CAPS[cc]
    assert ("fp8_e4m3" in native_line) is fp8, text
    assert ("nvfp4" in native_line) is fp4, text
    assert ("fp8_e4m3" in emulated_line) is not fp8
    assert f"Compute capability: {cc[0]}.{cc[1]}" in text


def test_notebook_environment_check_cpu(env_cell):
    text = env_cell["environment_report"]()
    assert "CPU only" in text and "none (no GPU)" in text and "nvfp4" in text.splitlines()[-1]


def test_to_blocked_matches_torchao():
    to_blocked = pytest.importorskip("torchao.prototype.mx_formats.utils").to_blocked
    m = torch.randint(0, 255, (200, 9), dtype=torch.uint8)
    assert torch.equal(device.to_blocked(m), to_blocked(m))


def test_fp4_packing_matches_torch_layout():
    kernels = pytest.importorskip("torchao.prototype.mx_formats.kernels")
    codes = R.quantize(torch.randn(8, 64), "nvfp4").codes
    assert torch.equal(R.pack_fp4(codes), kernels.pack_uint4(codes))
    assert torch.equal(R.unpack_fp4(R.pack_fp4(codes)), codes)


def test_cpu_lane_runs_and_passes():
    r = device.run_lane("cpu")
    assert r.status == "passed" and r.checks == 4, r.failures


def test_device_check_cli_on_this_machine():
    r = subprocess.run([sys.executable, "-m", "grader", "device-check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "lane cpu: ran 4 checks, all passed" in r.stdout
    if not torch.cuda.is_available():
        assert "lane fp8-native: skipped: needs compute capability >= 8.9" in r.stdout
        assert "lane fp4-native: skipped: needs compute capability 10.x or 12.x" in r.stdout


# ---- FP8 matmul bounds ----------------------------------------------------------------------

# Issue 10: torch._scaled_mm e4m3 x e4m3 -> fp32 on an H200 (9.0), max err / max |product|.
H200 = [(128, False, 2.4e-4), (1024, False, 1.7e-4), (8192, False, 1.3e-4), (1024, True, 1.2e-3), (8192, True, 1.4e-3)]


@pytest.mark.parametrize("k, fast, measured", H200)
def test_hopper_bound_covers_the_h200_measurements_with_margin(k, fast, measured):
    bound = device.matmul_rtol(k, (9, 0), fast)
    assert 3 * measured <= bound <= 20 * measured


def test_bounds_grow_with_k_and_fast_accumulation_and_cpu_is_tighter():
    for k in (128, 1024, 8192):
        assert device.matmul_rtol(k, None) < device.matmul_rtol(k, (9, 0), False) <= device.matmul_rtol(k, (9, 0), True)
    assert device.matmul_rtol(128, (9, 0), False) == device.matmul_rtol(128, (9, 0), True)  # < 128: nothing promoted
    assert device.matmul_rtol(128, None) < 1e-5 and device.matmul_rtol(1024, (9, 0), True) < 5e-3
    assert set(device.ACCUMULATOR) >= {8, 9, 10, 12}


def test_fp8_matmul_check_fails_on_a_product_off_by_one_part_in_a_thousand(monkeypatch):
    real = torch._scaled_mm
    monkeypatch.setattr(torch, "_scaled_mm", lambda *a, **k: real(*a, **k) * (1 + 2.0**-10))
    fails = device.fp8_matmul("cpu", ks=(128,))
    assert fails and "relative error" in fails[0]


def test_fp8_matmul_expected_value_check_catches_a_broken_quantizer(monkeypatch):
    real = R.dequantize
    monkeypatch.setattr(R, "dequantize", lambda q: real(q) * 1.25)  # emulated product 56% too large
    fails = device.fp8_matmul("cpu", ks=(128,))
    assert any("outside the E4M3 rounding bound" in f for f in fails)


# ---- Reference quantizers on CUDA against CPU --------------------------------------------

@pytest.fixture(scope="module")
def small_data():
    return device.reference_data(shape=(32, 128), seed=3)


def test_options_cover_every_format():
    assert set(device.QUANTIZE_OPTIONS) == set(R.FORMATS) == set(device.GAUSSIAN_SNR_FLOOR)


def test_reference_check_passes_with_cuda_division_emulated(small_data):
    assert device.reference_cpu_vs_device("cpu", small_data, context=CudaScalarDivision) == []


def test_reference_check_catches_division_by_python_floats_on_cuda(small_data, monkeypatch):
    """The H200 failure: scales computed as tensor / python_float differ on CUDA."""
    Q = importlib.import_module("reference.quantize")  # the package's `quantize` is the function

    monkeypatch.setattr(Q, "_div", lambda a, b: a / b)
    fails = device.reference_cpu_vs_device("cpu", small_data, context=CudaScalarDivision)
    differing = {f.split(" on ")[0].split("(")[0] for f in fails if "differs from CPU" in f}
    assert {"reference fp8_e4m3fn", "reference fp8_e5m2", "reference fp4_e2m1fn", "reference int8", "reference int4",
            "reference nvfp4"} <= differing, fails[:5]
    assert "reference mxfp4" not in differing and "reference bf16" in differing  # bf16: per_tensor_scale=True


def test_reference_check_compares_each_side_with_the_definition(small_data, monkeypatch):
    """Equal results on both sides are not enough: scales off by an ulp fail on both sides."""
    Q = importlib.import_module("reference.quantize")  # the package's `quantize` is the function

    monkeypatch.setattr(Q, "_div", lambda a, b: a * (1.0 / b))
    fails = device.reference_cpu_vs_device("cpu", small_data)
    assert not any("differs from CPU" in f for f in fails)
    assert any("fp8_e4m3fn" in f and "(CPU): scales differ from their float64 definition" in f for f in fails)
    assert any("fp8_e4m3fn" in f and "(cpu): scales differ" in f for f in fails)


def test_reference_check_has_an_snr_floor(small_data, monkeypatch):
    monkeypatch.setattr(R, "fake_quantize", lambda x, name, **o: torch.zeros_like(x))
    fails = device.reference_cpu_vs_device("cpu", small_data)
    assert any("SNR" in f and "(CPU)" in f for f in fails) and any("SNR" in f and "(cpu)" in f for f in fails)


def test_expected_scales_match_the_references_on_every_data_kind(small_data):
    for name, options in device.QUANTIZE_OPTIONS.items():
        for opts in options:
            for x in small_data.values():
                want, t = device.expected_scales(x, name, opts)
                q = R.quantize(x, name, **opts)
                assert (q.scales.flatten().numpy() == want).all(), (name, opts)
                assert t is None or float(q.tensor_scale) == t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the fp8-native lane); CI has none")
def test_gpu_lanes_pass_on_this_gpu():
    cc = R.current_capability()
    for lane, (runs, _) in device.plan(cc, has_cuda=True).items():
        if runs:
            r = device.run_lane(lane)
            assert r.status == "passed", r.failures

"""GPU lanes: which run where (simulated capabilities), CPU lane for real, honest skips."""

import subprocess
import sys

import pytest
import torch

import reference as R
from grader import device
from helpers import solution_cells

CAPS = {
    (8, 0): (False, False), (8, 9): (True, False), (9, 0): (True, False),
    (10, 0): (True, True), (12, 0): (True, True), (12, 1): (True, True),
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the fp8-native lane); CI has none")
def test_gpu_lanes_pass_on_this_gpu():
    cc = R.current_capability()
    for lane, (runs, _) in device.plan(cc, has_cuda=True).items():
        if runs:
            r = device.run_lane(lane)
            assert r.status == "passed", r.failures

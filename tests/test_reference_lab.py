"""The lab functions' reference versions: SNR, memory rules, advisor, hardware table."""

import math

import pytest
import torch

import reference as R


def test_snr_by_hand():
    x = torch.tensor([3.0, 4.0])  # signal power sum 25
    y = torch.tensor([3.0, 3.0])  # noise power sum 1
    assert R.calculate_snr(x, y) == pytest.approx(10 * math.log10(25))
    assert R.calculate_snr(x, x) == math.inf
    assert R.calculate_snr(torch.zeros(3), torch.ones(3)) == -math.inf
    assert R.calculate_snr([1.0, 2.0], [1.0, 2.5]) == pytest.approx(10 * math.log10(5 / 0.25))


def test_snr_refuses_bad_input():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        R.calculate_snr(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        R.calculate_snr(torch.tensor([1.0, float("nan")]), torch.ones(2))


def test_memory_rules():
    assert R.calculate_model_memory(70, "fp16") == 140.0
    assert R.calculate_model_memory(70, "FP4") == 35.0
    assert R.calculate_model_memory(70, "nvfp4", include_scale_overhead=True) == 70 * 4.5 / 8
    assert R.calculate_model_memory(8, "mxfp4", include_scale_overhead=True) == 8 * 4.25 / 8
    assert R.task_memory(10, "bf16", "inference") == pytest.approx(24.0)
    assert R.task_memory(10, "bf16", "training") == pytest.approx(80.0)


@pytest.mark.parametrize("call, exc, word", [
    (lambda: R.calculate_model_memory(7, "fp7"), ValueError, "fp7"),
    (lambda: R.calculate_model_memory(-1, "fp16"), ValueError, ">= 0"),
    (lambda: R.analyze_model_memory(7, memory_budget_gb=0), ValueError, "> 0"),
    (lambda: R.analyze_model_memory(7, task="serving"), ValueError, "inference"),
    (lambda: R.recommend_precision(7, quality_priority="speed"), ValueError, "balanced"),
    (lambda: R.recommend_precision("7B"), TypeError, "billions"),
])
def test_memory_refusals(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_analyze_34b():
    out = R.analyze_model_memory(34)
    assert list(out["precisions"]) == ["fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"]
    assert out["precisions"]["fp32"] == {"memory_gb": pytest.approx(34 * 4 * 1.2), "fits": False}
    assert out["precisions"]["bf16"]["fits"] is True  # 81.6 GB
    assert out["recommendation"] == "bf16"
    assert R.analyze_model_memory(30, task="training")["recommendation"] == "fp8"  # bf16 240 GB, fp8 120 GB
    assert R.analyze_model_memory(34, task="training")["recommendation"] is None  # fp8 136 GB > 128
    assert R.analyze_model_memory(1000)["recommendation"] is None


@pytest.mark.parametrize("size, budget, task, prio, expected, fits", [
    (70, 128, "inference", "quality", "fp8", True),      # bf16 168 GB > 128; fp8 84 GB
    (7, 128, "inference", "quality", "bf16", True),
    (7, 128, "inference", "balanced", "fp8", True),
    (7, 128, "inference", "memory", "fp4", True),
    (200, 128, "inference", "balanced", "fp4", True),    # 120 GB
    (250, 128, "inference", "balanced", "fp4", False),   # 150 GB: nothing fits
    (7, 128, "training", "quality", "fp32", True),       # 112 GB
    (7, 128, "training", "memory", "fp8", True),
    (70, 128, "training", "quality", "fp8", False),      # fp8 280 GB; never fp4 for training
])
def test_advisor_ladder(size, budget, task, prio, expected, fits):
    r = R.recommend_precision(size, budget, task, prio)
    assert (r["precision"], r["fits"]) == (expected, fits)
    assert r["memory_gb"] == pytest.approx(R.task_memory(size, expected, task))
    assert isinstance(r["reasoning"], str) and expected.upper() in r["reasoning"]


@pytest.mark.parametrize("cc, has_fp8, has_fp4", [
    ((8, 0), False, False), ((8, 6), False, False), ((8, 9), True, False), ((9, 0), True, False),
    ((10, 0), True, True), ((10, 3), True, True), ((12, 0), True, True), ((12, 1), True, True),
])
def test_native_formats_table(cc, has_fp8, has_fp4):
    native = R.native_formats(cc)
    assert ("fp8_e4m3" in native) == has_fp8
    assert ("nvfp4" in native) == has_fp4


def test_describe_device_cpu_and_spark():
    d = R.describe_device()
    assert d["device"] and isinstance(d["native"], tuple)
    if not torch.cuda.is_available():
        assert d["compute_capability"] is None and d["native"] == ()
    spark = R.describe_device((12, 1), "NVIDIA GB10")
    assert spark["architecture"] == "Blackwell (DGX Spark GB10)" and "nvfp4" in spark["native"]
    assert "mxfp8" in spark["emulated"]


def test_reference_demo_prints_every_format(capsys):
    from reference.__main__ import main

    main()
    out = capsys.readouterr().out
    for name in R.FORMATS:
        assert out.count(f"{name} ") >= 2 or out.count(name) >= 2, name
    assert "448" in out and "4.5" in out

"""The lab functions' reference versions: SNR, memory rules, advisor, hardware table."""

import math

import pytest
import torch

import reference as R
from labs.lab321 import answers as A


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
    assert A.calculate_model_memory(70, "fp16") == 140.0
    assert A.calculate_model_memory(70, "FP4") == 35.0
    assert A.calculate_model_memory(70, "nvfp4", include_scale_overhead=True) == 70 * 4.5 / 8
    assert A.calculate_model_memory(8, "mxfp4", include_scale_overhead=True) == 8 * 4.25 / 8
    assert A.task_memory(10, "bf16", "inference") == pytest.approx(24.0)


# Adam training, bytes per parameter, counted by hand (weights + gradients + master weights + 2 moments):
#   fp32: 4 + 4 + 0 + 4 + 4 = 16 (the FP32 weights are the master copy)
#   bf16/fp16: 2 + 2 + 4 + 4 + 4 = 16 (ZeRO's "2 + 2 + 12")
#   fp8/int8: 1 + 2 (BF16 gradients) + 4 + 4 + 4 = 15;  fp4/int4: 0.5 + 2 + 12 = 14.5
@pytest.mark.parametrize("precision, per_param", [
    ("fp32", 16), ("fp16", 16), ("bf16", 16), ("BF16", 16), ("fp8", 15), ("int8", 15), ("fp4", 14.5), ("int4", 14.5),
])
def test_training_memory_is_mixed_precision_adam(precision, per_param):
    assert A.training_bytes_per_param(precision) == per_param
    assert A.task_memory(10, precision, "training") == pytest.approx(10 * per_param)
    assert A.task_memory(7, precision, "training") == pytest.approx(7 * per_param)


def test_training_memory_counts_scales_when_asked():
    # fp4 counted as NVFP4 with its scales: 4.5 bits = 0.5625 B, + 2 + 12 = 14.5625 B/param
    assert A.task_memory(8, "fp4", "training", {"fp4": 0.5625}) == pytest.approx(8 * 14.5625)
    assert A.task_memory(8, "fp4", "inference", {"fp4": 0.5625}) == pytest.approx(8 * 0.5625 * 1.2)


def test_kv_cache_formula_by_hand():
    # Llama-3-70B shape: 80 layers, 8 KV heads, head_dim 128; BF16 (2 bytes); 8192 tokens, batch 1:
    # 2 * 80 * 8 * 128 * 8192 * 2 = 2_684_354_560 bytes
    assert A.kv_cache_gb(80, 8, 128, 8192) == pytest.approx(2.68435456)
    # 32768 tokens x batch 4 = 16x more: 42_949_672_960 bytes, above the 14 GB headroom of 70B FP8 weights
    assert A.kv_cache_gb(80, 8, 128, 32768, batch=4) == pytest.approx(42.94967296)
    assert A.kv_cache_gb(32, 8, 128, 1000, batch=2, bytes_per_value=1) == pytest.approx(2 * 32 * 8 * 128 * 1000 * 2 / 1e9)
    with pytest.raises(ValueError, match="seq_len"):
        A.kv_cache_gb(80, 8, 128, -1)


@pytest.mark.parametrize("call, exc, word", [
    (lambda: A.calculate_model_memory(7, "fp7"), ValueError, "fp7"),
    (lambda: A.calculate_model_memory(-1, "fp16"), ValueError, ">= 0"),
    (lambda: A.analyze_model_memory(7, memory_budget_gb=0), ValueError, "> 0"),
    (lambda: A.analyze_model_memory(7, task="serving"), ValueError, "inference"),
    (lambda: A.recommend_precision(7, quality_priority="speed"), ValueError, "balanced"),
    (lambda: A.recommend_precision("7B"), TypeError, "billions"),
])
def test_memory_refusals(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_analyze_34b():
    out = A.analyze_model_memory(34)
    assert list(out["precisions"]) == ["fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"]
    assert out["precisions"]["fp32"] == {"memory_gb": pytest.approx(163.2), "fits": False}  # 34 * 4 * 1.2
    assert out["precisions"]["bf16"] == {"memory_gb": pytest.approx(81.6), "fits": True}
    assert out["recommendation"] == "bf16"
    assert A.analyze_model_memory(1000)["recommendation"] is None


def test_analyze_training():
    # 7B: bf16 7 * 16 = 112 GB fits 128; fp32 also 112 but is not on the training ladder
    seven = A.analyze_model_memory(7, task="training")
    assert {p: round(r["memory_gb"], 6) for p, r in seven["precisions"].items()} == {
        "fp32": 112, "fp16": 112, "bf16": 112, "fp8": 105, "int8": 105, "int4": 101.5, "fp4": 101.5}
    assert seven["recommendation"] == "bf16"
    assert A.analyze_model_memory(8, task="training")["recommendation"] == "bf16"  # 128 GB: exactly at the budget
    assert A.analyze_model_memory(8.2, task="training")["recommendation"] == "fp8"  # bf16 131.2, fp8 123
    assert A.analyze_model_memory(9, task="training")["recommendation"] is None  # fp8 135 > 128
    assert A.analyze_model_memory(30, task="training", memory_budget_gb=480)["recommendation"] == "bf16"  # 480


@pytest.mark.parametrize("size, budget, task, prio, expected, fits, gb", [
    (70, 128, "inference", "quality", "fp8", True, 84.0),      # bf16 168 GB > 128; fp8 84 GB
    (7, 128, "inference", "quality", "bf16", True, 16.8),
    (7, 128, "inference", "balanced", "fp8", True, 8.4),
    (7, 128, "inference", "memory", "fp4", True, 4.2),
    (200, 128, "inference", "balanced", "fp4", True, 120.0),
    (250, 128, "inference", "balanced", "fp4", False, 150.0),  # nothing fits
    (7, 128, "training", "quality", "bf16", True, 112.0),      # FP32 is not ranked above BF16
    (7, 128, "training", "balanced", "bf16", True, 112.0),     # balanced training starts at bf16 too
    (7, 128, "training", "memory", "fp8", True, 105.0),        # memory priority: fp8, never fp4
    (8.2, 128, "training", "quality", "fp8", True, 123.0),     # bf16 131.2 GB does not fit
    (70, 128, "training", "quality", "fp8", False, 1050.0),    # fp8 70 * 15; never fp4 for training
])
def test_advisor_ladder(size, budget, task, prio, expected, fits, gb):
    r = A.recommend_precision(size, budget, task, prio)
    assert (r["precision"], r["fits"]) == (expected, fits)
    assert r["memory_gb"] == pytest.approx(gb)
    assert isinstance(r["reasoning"], str) and expected.upper() in r["reasoning"]


def test_training_ladder_never_fp32_or_fp4():
    for size in (0.5, 1, 5, 8, 8.2, 9, 20, 100):
        for budget in (16, 64, 128, 256):
            for prio in ("quality", "balanced", "memory"):
                assert A.recommend_precision(size, budget, "training", prio)["precision"] in ("bf16", "fp8")


@pytest.mark.parametrize("cc, has_fp8, has_fp4", [
    ((8, 0), False, False), ((8, 6), False, False), ((8, 9), True, False), ((9, 0), True, False),
    ((10, 0), True, True), ((10, 3), True, True), ((12, 0), True, True), ((12, 1), True, True),
])
def test_native_formats_table(cc, has_fp8, has_fp4):
    native = R.native_formats(cc)
    assert ("fp8_e4m3fn" in native) == has_fp8
    assert ("nvfp4" in native) == has_fp4


def test_describe_device_cpu_and_spark():
    d = R.describe_device()
    assert d["device"] and isinstance(d["native"], tuple)
    if not torch.cuda.is_available():
        assert d["compute_capability"] is None and d["native"] == ()
    spark = R.describe_device((12, 1), "NVIDIA GB10")
    assert spark["architecture"] == "Blackwell (DGX Spark GB10)" and "nvfp4" in spark["native"]
    assert "mxfp8" in spark["native"] and "mxfp4" in spark["emulated"]


def test_reference_demo_prints_every_format(capsys):
    from reference.__main__ import main

    main()
    out = capsys.readouterr().out
    for name in R.FORMATS:
        assert out.count(f"{name} ") >= 2 or out.count(name) >= 2, name
    assert "448" in out and "4.5" in out

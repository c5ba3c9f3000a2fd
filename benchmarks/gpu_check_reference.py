"""On a CUDA machine: do the references agree with themselves on CPU, and how fast are they?

    .venv/bin/python benchmarks/gpu_check_reference.py [--n 16384] [--compare-n 1024] [--repeat 5]

Prints, in one run:

1. CUDA's scalar division: ``v / 448.0`` against ``v / tensor(448.0)`` on 1M values (the
   mechanism behind issue 10; nonzero is expected and is why reference/ never divides by a
   Python number).
2. For every format and quantize option, on Gaussian, Student-t(3) and 40-binade data
   (``--compare-n`` squared values each): how many fake-quantized values, codes and scales
   differ between reference on CUDA and reference on CPU (bitwise, NaN-aware). All must be 0.
3. FP8 scaled matmul (torch._scaled_mm) errors against the emulated product, K = 128, 1024,
   8192, both use_fast_accum modes, with the bound grader/course/device.py applies.
4. Time (CUDA events, median of --repeat) of reference.fake_quantize and reference.quantize
   for every format on an N x N float32 tensor, next to torch's native fp8 round trip
   (clamp, cast to float8_e4m3fn, cast back) on the same tensor.

Exits 0 when every difference count is 0 and every matmul is within its bound, 1 otherwise,
and 0 with a message on a machine without CUDA. ``--cpu-dry-run`` runs the script's own code
with "cpu" in place of "cuda" (small sizes, wall-clock timing), to test the script anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


DEV = "cuda"


def cuda_ms(fn, repeat: int) -> float:
    fn()  # warm-up (allocator, kernels)
    if DEV == "cpu":
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
        del out
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16384, help="timing tensor is N x N float32 (default 16384: 1 GiB)")
    ap.add_argument("--compare-n", type=int, default=1024, help="CPU-vs-CUDA data is N x N per data kind")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpu-dry-run", action="store_true", help="test this script without a GPU")
    a = ap.parse_args()
    global DEV
    if a.cpu_dry_run:
        DEV = "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to check (run this on a GPU machine).")
        return 0

    import reference as R
    from grader.course import device

    cc = torch.cuda.get_device_capability(0) if DEV == "cuda" else (9, 0)
    gpu = torch.cuda.get_device_name(0) if DEV == "cuda" else "CPU dry run (as 9.0)"
    print(f"device: {gpu} (compute capability {cc[0]}.{cc[1]}), "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"hardware tensor-core formats: {', '.join(R.hardware_formats(cc))}")
    print(f"native in this PyTorch: {', '.join(R.torch_native_formats(cc))}")
    ok = True

    # 1. the mechanism
    v = torch.rand(1_000_000, generator=torch.Generator().manual_seed(0)).to(DEV) * 1000
    for d in (448.0, 6.0, 127.0):
        n = int((v / d != v / torch.tensor(d, device=DEV)).sum())
        print(f"{DEV} v / {d:g} (Python float) vs v / tensor({d:g}): {n} of {v.numel()} differ")

    # 2. reference on CUDA vs CPU
    print(f"\nreference on CUDA vs CPU ({a.compare_n} x {a.compare_n} per data kind; "
          "differing fake-quantized values / codes / scales):")
    data = device.reference_data((a.compare_n, a.compare_n), seed=0)
    for name, options in device.QUANTIZE_OPTIONS.items():
        for opts in options:
            label = name + ("(" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")" if opts else "")
            counts = [0, 0, 0]
            for x in data.values():
                xc = x.to(DEV)
                cq, gq = R.quantize(x, name, **opts), R.quantize(xc, name, **opts)
                cf, gf = R.fake_quantize(x, name, **opts), R.fake_quantize(xc, name, **opts).cpu()
                both_nan = torch.isnan(cf) & torch.isnan(gf)
                counts[0] += int(((cf.view(torch.int32) != gf.view(torch.int32)) & ~both_nan).sum())
                counts[1] += int((cq.codes != gq.codes.cpu()).sum())
                counts[2] += int((cq.scales.view(torch.int32) != gq.scales.cpu().view(torch.int32)).sum())
            ok &= counts == [0, 0, 0]
            print(f"  {label:<40} {counts[0]:>9} {counts[1]:>9} {counts[2]:>7}")
    fails = device.reference_cpu_vs_device(DEV)  # the lane check itself (default size)
    verdict = "passed" if not fails else "FAILED: " + "; ".join(fails[:3])
    print(f"lane check reference_cpu_vs_device({DEV!r}): {verdict}")
    ok &= not fails

    # 3. FP8 matmul accuracy
    device.NOTES.clear()
    fails = device.fp8_matmul(DEV)
    print("\n" + "\n".join(device.NOTES))
    if fails:
        print("FAILED: " + "; ".join(fails))
    ok &= not fails
    if "nvfp4" in R.torch_native_formats(cc) and DEV == "cuda":
        device.NOTES.clear()
        fails = device.fp4_matmul(DEV)
        print("\n".join(device.NOTES) + ("\nFAILED: " + "; ".join(fails) if fails else ""))
        ok &= not fails

    # 4. timing
    n = a.n
    print(f"\ntiming on a {n} x {n} float32 {DEV} tensor (median of {a.repeat}, "
          f"{'CUDA events' if DEV == 'cuda' else 'wall clock'}):")
    x = torch.randn(n, n, device=DEV, generator=torch.Generator(device=DEV).manual_seed(0))
    base = cuda_ms(lambda: x.clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float32), a.repeat)
    print(f"  {'native fp8 round trip':<28} {base:9.2f} ms   1.00x")
    for name in R.FORMATS:
        fq = cuda_ms(lambda: R.fake_quantize(x, name), a.repeat)
        q = cuda_ms(lambda: R.quantize(x, name), a.repeat)
        print(f"  {'fake_quantize ' + name:<28} {fq:9.2f} ms {fq / base:6.2f}x   quantize {q:9.2f} ms {q / base:6.2f}x")
        if DEV == "cuda":
            torch.cuda.empty_cache()
    if DEV == "cuda":
        print(f"\npeak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

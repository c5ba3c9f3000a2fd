"""Time fake_quantize for every format next to its baselines, all in one run.

    .venv/bin/python benchmarks/bench_quantize.py [--size 4096] [--repeat 3] [--threads 1]

Each candidate runs in a fresh subprocess on the same N x N float32 tensor, so its peak
memory (ru_maxrss growth past the input) is its own. Ratios are against torch's native
fp8 round trip (clamp, cast to float8_e4m3fn, cast back) measured in this run.
Baselines: the native fp8 cast, torchao's NVFP4/MX quantizers (when installed) and the
lab text's original FP4 simulation (seed/, DESIGN §5.3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(THREADS)
name, n, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = torch.randn(n, n, generator=torch.Generator().manual_seed(0))

def lab_text_fp4(tensor, block_size=16):  # verbatim from the lab text (seed/), returns dequantized
    FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    original_shape = tensor.shape
    flat = tensor.flatten()
    n = flat.numel()
    pad = (block_size - n % block_size) % block_size
    if pad > 0:
        flat = torch.nn.functional.pad(flat, (0, pad))
    n_blocks = flat.numel() // block_size
    blocks = flat.view(n_blocks, block_size)
    tensor_scale = blocks.abs().max()
    blocks_normalized = blocks / max(tensor_scale.item(), 1e-10)
    block_max = blocks_normalized.abs().amax(dim=1, keepdim=True)
    block_scales = torch.clamp(block_max / 6.0, min=1e-10)
    normalized = blocks_normalized / block_scales
    signs = torch.sign(normalized)
    distances = (normalized.abs().unsqueeze(-1) - FP4_VALUES.unsqueeze(0).unsqueeze(0)).abs()
    quantized = signs * FP4_VALUES[distances.argmin(dim=-1)]
    return (quantized * block_scales * tensor_scale).flatten()[:n].view(original_shape)

if name == "native_fp8":
    fn = lambda: x.clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float32)
elif name == "lab_text_fp4":
    fn = lambda: lab_text_fp4(x)
elif name.startswith("torchao_"):
    from torchao.prototype.mx_formats.mx_tensor import to_mx, to_dtype
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, nvfp4_quantize
    if name == "torchao_nvfp4":
        def fn():
            return nvfp4_quantize(x, 16, per_tensor_scale=x.abs().amax() / 2688.0)
    else:
        elem = {"torchao_mxfp4": torch.float4_e2m1fn_x2, "torchao_mxfp8": torch.float8_e4m3fn}[name]
        def fn():
            s, d = to_mx(x, elem, 32)
            return to_dtype(d, s, elem, 32, torch.float32)
else:
    import reference
    fn = lambda: reference.fake_quantize(x, name)
fn()  # warm-up (also loads lazy tables)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeat):
    t = time.perf_counter(); y = fn(); times.append(time.perf_counter() - t); del y
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"name": name, "s": min(times), "input_mb": x.numel() * 4 / 2**20,
                  "rss_peak_mb": peak / 1024, "rss_base_mb": base / 1024}))
"""



def run(name: str, n: int, repeat: int, threads: int) -> dict | None:
    # Peak memory: a second fresh process runs the candidate once, with no warm-up, so
    # ru_maxrss growth past "input allocated" is the candidate's own peak.
    mem_code = CHILD.replace("THREADS", str(threads)).replace(
        "fn()  # warm-up (also loads lazy tables)\nbase", "base")
    mem_code = mem_code.replace("for _ in range(repeat):", "for _ in range(1):")
    out = {}
    for code, key in ((CHILD.replace("THREADS", str(threads)), "time"), (mem_code, "mem")):
        p = subprocess.run([sys.executable, "-c", code, name, str(n), str(repeat)], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"  {name}: skipped ({p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'failed'})", file=sys.stderr)
            return None
        out[key] = json.loads(p.stdout.strip().splitlines()[-1])
    r = out["time"]
    r["extra_mb"] = out["mem"]["rss_peak_mb"] - out["mem"]["rss_base_mb"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--formats", default="fp16,bf16,fp8_e4m3fn,fp8_e5m2,fp4_e2m1fn,int8,int4,nvfp4,mxfp4,mxfp8")
    a = ap.parse_args()
    names = ["native_fp8"] + a.formats.split(",") + ["torchao_nvfp4", "torchao_mxfp4", "torchao_mxfp8", "lab_text_fp4"]
    print(f"fake_quantize on a {a.size}x{a.size} float32 tensor, {a.threads} thread(s), best of {a.repeat}")
    rows = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        r = run(name, a.size, a.repeat, a.threads)
        if r:
            rows.append(r)
    base = next(r for r in rows if r["name"] == "native_fp8")
    ao = {r["name"].removeprefix("torchao_"): r for r in rows if r["name"].startswith("torchao_")}
    print(f"{'candidate':<16}{'ms':>9}{'x native fp8':>14}{'x torchao':>11}{'peak extra / input':>20}")
    for r in rows:
        vs_ao = f"{r['s'] / ao[r['name']]['s']:.2f}" if r["name"] in ao else ""
        print(f"{r['name']:<16}{r['s'] * 1e3:>9.1f}{r['s'] / base['s']:>14.2f}{vs_ao:>11}"
              f"{r['extra_mb'] / r['input_mb']:>19.2f}x")


if __name__ == "__main__":
    main()

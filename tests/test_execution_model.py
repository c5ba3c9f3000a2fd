"""The execution model: a warm, clean zygote; a keeper per notebook with a private uid, a
cgroup for the whole tree and nothing left behind; calls in the notebook process (CUDA works);
environment faults stop grading instead of scoring zeros; the canary."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader import config
from grader.grading.canary import CanaryFailed, run_canary
from grader.grading.grade import grade_cells
from grader.sandbox import EnvironmentFault, Limits, Sandbox, StudentError
from grader.sandbox.worker.uids import UID_BASE, UID_SLOTS
from helpers import FULL, ROOT, build

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def settings(**limits):
    s = config.load(ROOT)
    base = dict(call_timeout=2, cell_timeout=20, notebook_timeout=120, memory_bytes=3 << 30)
    s.limits = dataclasses.replace(Limits(), **{**base, **limits})
    s.assignment = "lab321"  # the notebooks graded here are lab321's (the course has two labs)
    return s


def scores(report):
    return {k: e.score for k, e in report.exercises.items()}


def sandbox_processes(uids=None) -> list[str]:
    """Processes of these sandbox uids (default: any), and the corpus's sleepers, still around."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80].decode(errors="replace")
        except OSError:
            continue
        if (uid in uids if uids is not None else UID_BASE <= uid < UID_BASE + UID_SLOTS) or "sleep 77" in cmd:
            out.append(f"{pid} uid {uid}: {cmd}")
    return out


ATTACKER = build(append='''
import os, time
KIDS = []
for i in range(100000):           # take every process slot there is
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        if i < 3:                 # three children holding 1.5 GiB each
            try:
                hog = bytearray(3 << 29)
                for j in range(0, len(hog), 4096):
                    hog[j] = 1
            except MemoryError:
                pass
        os.setsid()               # and try to outlive the grading
        time.sleep(600)
        os._exit(0)
    KIDS.append(pid)
''')


@pytest.mark.skipif(os.geteuid() != 0, reason="private uids and cgroups need root (CI runs as root)")
def test_attacker_beside_two_model_solutions_leaves_them_full_marks_and_nothing_behind():
    s = settings()
    with ThreadPoolExecutor(3) as pool:
        futs = [pool.submit(grade_cells, cells, label=label, settings=s)
                for label, cells in (("attacker", ATTACKER), ("honest1", build()), ("honest2", build()))]
        reports = [f.result() for f in futs]
    assert scores(reports[1]) == FULL, reports[1].notes
    assert scores(reports[2]) == FULL, reports[2].notes
    uids = {int(r.isolation_detail.split("private uid ")[1].split(";")[0]) for r in reports}
    assert len(uids) == 3, [r.isolation_detail for r in reports]
    time.sleep(0.3)
    assert sandbox_processes(uids) == []  # (other gradings on this machine may be running)


@pytest.mark.skipif(os.geteuid() != 0, reason="private uids need root (CI runs as root)")
def test_each_sandbox_has_its_own_uid_and_no_capabilities():
    probe = '''
import os
UID = os.getuid()
CAPS = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
'''
    boxes = [Sandbox([probe], limits=settings().limits, level="namespaces", course_root=ROOT) for _ in range(3)]
    try:
        for b in boxes:
            b.launch()
        uids = [b.get("UID") for b in boxes]
        caps = [b.get("CAPS") for b in boxes]
    finally:
        for b in boxes:
            b.close()
    assert len(set(uids)) == 3 and all(UID_BASE <= u < UID_BASE + UID_SLOTS for u in uids), uids
    assert all(c == ["0000000000000000"] * 3 for c in caps), caps


def test_memory_limit_covers_the_whole_tree():
    """Three children of 1.5 GiB under a 3 GiB limit: the tree limit stops at least one of them."""
    cells = ['''
import os, time
STATUS = []
pids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            hog = bytearray(3 << 29)
            for j in range(0, len(hog), 4096):
                hog[j] = 1
            time.sleep(3)
        except MemoryError:
            os._exit(3)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    STATUS.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        if "cgroup" not in sb.run.detail:
            pytest.skip(f"no writable cgroup here: limits are per process ({sb.run.detail})")
        status = sb.get("STATUS")
    assert status.count(0) < 3 and all(s in (0, -9, 3) for s in status), status


def test_a_call_may_initialise_cuda_and_the_next_call_still_works():
    """Calls run in the notebook process (not in forks of it): CUDA state survives between calls.
    On a machine without CUDA this is the same code path with the CPU fallback students write."""
    cells = ['''
import torch
DEV = "cuda" if torch.cuda.is_available() else "cpu"
def f(x):
    return float((x.to(DEV) * 2).sum().cpu())
def pid():
    import os
    return os.getpid()
''']
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with Sandbox(cells, limits=settings().limits, course_root=ROOT, device=device) as sb:
        assert sb.call("f", torch.ones(4)) == 8.0
        first = sb.call("pid")
        assert sb.call("f", torch.ones(2)) == 4.0
        assert sb.call("pid") == first, "each call must run in the same notebook process"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_model_solution_moved_to_cuda_scores_full_marks():
    moved = build(append='''
import torch
_snr, _by, _mem, _rec = calculate_snr, snr_by_format, analyze_model_memory, recommend_precision
def calculate_snr(original, quantized):
    return _snr(original.to("cuda"), quantized.to("cuda"))
def snr_by_format(weights):
    return _by(weights.to("cuda"))
''')
    s = settings()
    s.device = "cuda"
    report = grade_cells(moved, lab="lab321", settings=s)
    assert scores(report) == FULL, report.notes


def test_a_cpu_grading_hides_the_gpu_so_grades_never_depend_on_one():
    """Graded on the CPU (the default), the notebook sees no GPU even on a GPU machine: no /dev/nvidia*,
    CUDA_VISIBLE_DEVICES empty. A notebook written to run anywhere (the lab's DEV idiom) scores the same on
    every machine, and no neighbour's use of GPU memory can reach it."""
    cells = ['''
import os, torch
def seen():
    return [os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.is_available(),
            sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))]
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        assert sb.call("seen") == ["", False, []]


def test_calls_that_end_the_process_cost_only_their_checks_and_a_fresh_process_follows():
    cells = ['''
import os
CALLS = 0
def boom():
    os._exit(1)
def ok():
    global CALLS
    CALLS += 1
    return CALLS
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        assert sb.call("ok") == 1
        with pytest.raises(StudentError, match="exit code 1"):
            sb.call("boom")
        assert sb.call("ok") == 1, "a fresh process runs the cells again"
        with pytest.raises(StudentError):
            sb.call("boom")
        with pytest.raises(StudentError, match="not called again"):
            sb.call("boom")
        assert sb.call("ok") == 1
        assert sb.run.restarts == 2


def test_missing_module_is_an_environment_fault_not_a_zero():
    s = settings()
    s.worker_imports = s.worker_imports + ("no_such_module_for_the_test",)
    with pytest.raises(EnvironmentFault, match="no_such_module_for_the_test"):
        grade_cells(build(), lab="lab321", settings=s)
    with pytest.raises(CanaryFailed, match="no_such_module_for_the_test"):
        run_canary(s, "lab321")


def _course_missing_module(tmp_path: Path) -> Path:
    from grader.course import demo

    root = tmp_path / "course"
    demo.copy_course(root)
    with open(root / "course_config.py", "a") as f:
        f.write('\nc.LabGrader.worker_imports = ["numpy", "torch", "IPython", "traitlets", "matplotlib", '
                '"no_such_module_for_the_test"]\n')
    return root


def test_cli_exits_nonzero_and_names_the_missing_piece(tmp_path):
    root = _course_missing_module(tmp_path)
    nb = root / "source" / "lab321" / "lab321.ipynb"
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(nb), "--course", str(root), "--json"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "" and "no_such_module_for_the_test" in r.stderr and "Traceback" not in r.stderr


def test_nbgrader_autograde_stops_on_a_failed_canary_and_writes_nothing(tmp_path):
    import sqlite3

    from grader.course import demo

    root = _course_missing_module(tmp_path)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lab321", "--force"], cwd=root,
                   env=ENV, check=True, capture_output=True)
    release = root / "assignments" / "lab321" / "lab321.ipynb"
    for sid in ("alice", "bob"):
        demo.write_submission(release, root / "submitted" / sid / "lab321" / "lab321.ipynb", None)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "lab321"], cwd=root, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "grading stopped" in r.stderr and "no_such_module_for_the_test" in r.stderr, r.stderr[-2000:]
    con = sqlite3.connect(root / "gradebook.db")
    assert con.execute("select count(*) from submitted_assignment").fetchone()[0] == 0
    assert not (root / "autograded").exists() or not any((root / "autograded").rglob("*.ipynb"))


def test_zygote_holds_nothing_of_the_grader():
    """The warm parent is a clean process: no grader, reference or check module, no seed."""
    cells = ['''
import sys, gc
MODS = sorted(m for m in sys.modules if m.split(".")[0] in ("grader", "reference", "course_config", "helpers"))
SEEDS = [o for o in gc.get_objects() if isinstance(o, str) and "lab321-2026-autumn" in o][:1]
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        assert sb.get("MODS") == []
        assert sb.get("SEEDS") == []


def test_time_budget_bounds_a_slow_notebook():
    """Cells sleeping just under their timeout and calls just under theirs: the budget stops it."""
    cells = build() + ["import time\ntime.sleep(1.8)\n"] * 3 + ['''
_slow = calculate_snr
def calculate_snr(original, quantized):
    time.sleep(1.8)
    return _slow(original, quantized)
''']
    s = settings(notebook_budget=8, cell_timeout=2)
    t = time.monotonic()
    report = grade_cells(cells, lab="lab321", settings=s)
    assert time.monotonic() - t < 8 + 6
    msgs = [c.message for e in report.exercises.values() for c in e.checks if not c.passed]
    assert any("time budget of 8 s is used up" in m for m in msgs), msgs


def test_magics_that_make_sense_headless_work():
    cells = build(prepend='''%matplotlib inline
%config InlineBackend.figure_format = "png"
%time x = sum(range(10))
''', after={"snr_solution": '''%%capture captured
print("hidden by capture")
'''})
    report = grade_cells(cells, lab="lab321", settings=settings())
    assert scores(report) == FULL, report.notes
    assert not any("raised" in n for n in report.notes), report.notes


def test_hidden_inputs_never_reach_a_report():
    """A notebook that records its arguments (in memory and in a file) and echoes them in every
    exception: hidden checks show only the type; public checks ran before any hidden call."""
    cells = build(append='''
import json, os
SEEN = []
def _spy(fn):
    def wrapped(*args, **kwargs):
        SEEN.append(repr((args, kwargs))[:300])
        with open("spy.log", "a") as f:
            f.write(repr((args, kwargs))[:300] + "\\n")
        log = open("spy.log").read() if os.path.exists("spy.log") else ""
        raise ValueError("LEAK " + " | ".join(SEEN) + " FILE " + log)
    return wrapped
calculate_snr = _spy(calculate_snr)
analyze_model_memory = _spy(analyze_model_memory)
recommend_precision = _spy(recommend_precision)
''')
    s = settings()
    report = grade_cells(cells, lab="lab321", settings=s)
    hidden_inputs = _hidden_inputs(s.hidden_seed)
    assert len(hidden_inputs) > 10, hidden_inputs  # the recorder saw the hidden checks' inputs
    for e in report.exercises.values():
        for c in e.checks:
            assert not any(h in c.message for h in hidden_inputs), (c.name, c.message)
            if c.hidden and not c.passed:  # the check's fixed text (tests/test_hidden_messages.py)
                assert "LEAK" not in c.message and "ValueError" not in c.message, (c.name, c.message)
    assert any("LEAK" in c.message for e in report.exercises.values() for c in e.checks if not c.hidden), \
        "public checks keep the student's own message (on public inputs)"


def _hidden_inputs(seed: str) -> set[str]:
    """The hidden checks' arguments, as text a report could show: scalar arguments and the first
    elements of tensors, in torch's and Python's spellings. Computed by running every hidden
    check against the references with a recorder in place of the student."""
    import reference
    import torch

    from grader.grading.checks import rng_for
    from labs.lab321 import LAB
    from grader.sandbox import encode_arg, decode

    seen: set[str] = set()

    def spell(v):
        import numpy as np

        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            v = torch.from_numpy(v)
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            flat = v.flatten()[:6]
            seen.update(repr(flat)[8:30].split(",")[:1])
            seen.update(f"{float(x):.4e}" for x in flat if float(x) != 0)
            seen.update(str(float(x)) for x in flat if float(x) != 0 and len(str(float(x))) > 6)
        elif isinstance(v, float) and v not in (16.0, 24.0, 48.0, 80.0, 96.0, 128.0, 192.0, 256.0, 64.0, 10.0):
            seen.add(repr(v))

    class Recorder:
        def call(self, name, *args, **kwargs):
            for v in list(args) + list(kwargs.values()):
                spell(v)
            if name == "snr_by_format":
                return {k: reference.calculate_snr(args[0], reference.fake_quantize(args[0], f))
                        for k, f in (("int8", "int8"), ("int4", "int4"), ("fp8", "fp8_e4m3"), ("fp4", "fp4_e2m1"))}
            return decode(encode_arg(getattr(reference, name)(*args, **kwargs)))

        def get(self, name):
            return "int8"

    for checks in LAB.exercises.by_exercise().values():
        for c in checks:
            if c.hidden:
                try:
                    c.run(Recorder(), rng_for(seed, c))
                except Exception:  # noqa: BLE001 - only the recorded inputs matter here
                    pass
    return {h for h in seen if len(h) >= 5}


def test_control_characters_never_reach_the_terminal():
    from grader.grading.grade import format_report

    cells = build(after={"snr_solution": '''
def calculate_snr(original, quantized):
    raise ValueError("\\x1b[2J\\x1b[H18 / 18, all checks passed\\x07\\u202e")
'''})
    text = format_report(grade_cells(cells, lab="lab321", settings=settings()))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[2J" not in text


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root (CI runs as root)")
def test_cpu_time_of_the_whole_tree_is_capped():
    """Children spinning on every core, each in its own session: together they get the sandbox's
    CPU share (1 CPU), so a notebook graded beside it keeps the rest of the machine."""
    cells = ['''
import os, time
kids = []
start = time.time()
for i in range(max(2, os.cpu_count() or 2) * 2):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        end = time.time() + 2.0
        while time.time() < end:
            pass
        os._exit(0)
    kids.append(pid)
cpu = 0.0
for pid in kids:
    _, _, usage = os.wait4(pid, 0)
    cpu += usage.ru_utime + usage.ru_stime
WALL = time.time() - start
CPU = cpu
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        if "CPU for the whole tree" not in sb.run.detail:
            pytest.skip(f"no CPU controller here ({sb.run.detail})")
        cpu, wall = sb.get("CPU"), sb.get("WALL")
    assert cpu <= 1.3 * wall, f"children used {cpu:.1f} s of CPU in {wall:.1f} s"
    if (os.cpu_count() or 1) >= 2:
        assert cpu >= 0.5 * wall  # they did run


def test_student_code_cannot_make_namespaces_or_mounts():
    """seccomp: user namespaces (the usual door to kernel bugs), mounts and bpf are refused,
    while processes, threads and subprocesses work as usual."""
    probe = '''
import ctypes, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
R = {}
R["unshare_user"] = [libc.unshare(0x10000000), ctypes.get_errno()]
R["mount"] = [libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno()]
if os.uname().machine == "x86_64":  # the x32 ABI's unshare: same arch, number | 0x40000000
    R["x32_unshare"] = libc.syscall(272 | 0x40000000, 0x10000000)
R["unshare_cmd"] = subprocess.run(["unshare", "-Ur", "true"], capture_output=True).returncode
R["echo"] = subprocess.run(["sh", "-c", "echo hi"], capture_output=True, text=True).stdout
pid = os.fork()
if pid == 0:
    os._exit(7)
R["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
t = threading.Thread(target=lambda: None); t.start(); t.join()
'''
    with Sandbox([probe], limits=settings().limits, course_root=ROOT) as sb:
        if "seccomp" not in sb.run.detail or "no seccomp" in sb.run.detail:
            pytest.skip(f"no seccomp filter on this architecture ({sb.run.detail})")
        r = sb.get("R")
    assert r["unshare_user"] == [-1, 1] and r["mount"] == [-1, 1], r
    assert r["unshare_cmd"] != 0 and r.get("x32_unshare", -1) == -1
    assert r["echo"] == "hi\n" and r["fork"] == 7


LEAKY_RETURNS = r'''
import os
_seen = []
_orig_amm = analyze_model_memory
def analyze_model_memory(size, memory_budget_gb=128.0, task="inference"):
    _seen.append(f"{size}/{memory_budget_gb}/{task}")
    r = dict(_orig_amm(size, memory_budget_gb=memory_budget_gb, task=task))
    r["recommendation"] = "LEAK " + " ".join(_seen)   # a string that carries every input seen
    return r
_orig_rp = recommend_precision
def recommend_precision(size, memory_budget_gb=128.0, task="inference", quality_priority="balanced"):
    _seen.append(f"{size}/{memory_budget_gb}/{task}/{quality_priority}")
    r = dict(_orig_rp(size, memory_budget_gb=memory_budget_gb, task=task, quality_priority=quality_priority))
    r["fits"] = "LEAK " + "|".join(_seen[-6:])
    r["precision"] = "LEAK " + "|".join(_seen[-6:])
    return r
_orig_pc = int8_per_channel
def int8_per_channel(w):
    out = _orig_pc(w).reshape(-1).clone()
    out[:min(4321, out.numel())] += 1.0   # how many values are wrong: a count the student chooses
    return out.reshape(w.shape)
_orig_snr = calculate_snr
def calculate_snr(original, quantized):
    if original.numel() > 8:
        os._exit(int(abs(float(original.flatten()[0])) * 1000) % 256)  # the exit code as a channel
    return _orig_snr(original, quantized)
'''


def test_returned_values_and_exit_codes_carry_nothing_out_of_hidden_checks():
    s = settings()
    report = grade_cells(build(append=LEAKY_RETURNS), lab="lab321", settings=s)
    hidden_inputs = _hidden_inputs(s.hidden_seed)
    for e in report.exercises.values():
        for c in e.checks:
            if c.hidden and not c.passed:
                assert "leak" not in c.message.lower(), (c.name, c.message)
                assert "exit code" not in c.message and "signal" not in c.message, (c.name, c.message)
                assert "4321" not in c.message, (c.name, c.message)  # no count the student chose
            assert not any(h in c.message for h in hidden_inputs), (c.name, c.message)
    assert not any("time(s)" in n for n in report.notes), report.notes


def test_a_public_message_cannot_fake_report_lines():
    from grader.grading.grade import format_report

    cells = build(after={"snr_solution": '''
def calculate_snr(original, quantized):
    raise ValueError("x\\n      [PASS] snr_known_value (public check, 1 pt)\\u2028\\u200b\\ufeffTOTAL 18 / 18 \\U000E0041")
'''})
    text = format_report(grade_cells(cells, lab="lab321", settings=settings()))
    assert not any(line.strip().startswith("[PASS] snr_known_value") for line in text.splitlines()), text
    for ch in ("\u2028", "\u200b", "\ufeff", "\U000E0041"):
        assert ch not in text


def test_wrapped_feedback_cannot_fake_report_lines():
    """The grade cells' feedback is wrapped at 100 columns: a message padded so that its own "[PASS] ..."
    would start a wrapped line gets CONTINUED in front of it, and its tags are defanged anyway."""
    from grader.grading.grade import CONTINUED, FEEDBACK_WIDTH, report_lines_for_exercise

    cells = build(after={"snr_solution": '''
def calculate_snr(original, quantized):
    raise ValueError("_" * 88 + " [PASS] snr_known_value (public check, 1 pt) " + "_" * 88 + " [ pass ] snr_identical")
'''})
    report = grade_cells(cells, lab="lab321", settings=settings())
    lines = report_lines_for_exercise(report.exercises["snr"], report)
    assert all(len(line) <= FEEDBACK_WIDTH for line in lines), lines
    for line in lines[1:]:
        assert line.startswith(("  [PASS] ", "  [FAIL] ", "  notes from running", CONTINUED)), line
    assert sum("[PASS] snr_known_value" in line for line in lines) == 0, lines
    assert any("(PASS) snr_known_value" in line for line in lines), lines


def test_sandbox_folders_of_a_killed_grader_are_swept_by_the_next(tmp_path, monkeypatch):
    """A grader killed with SIGKILL cannot remove its /tmp/lab-sandbox-<pid>-* folder; the next grader
    run removes the folders whose grader pid is gone and keeps those of graders still running."""
    import tempfile
    from grader.sandbox import client as S

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(S, "_swept", False)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    dead = tmp_path / f"lab-sandbox-{killed.pid}-x1"
    (dead / "root").mkdir(parents=True)
    (dead / "work0").mkdir()
    (dead / "work0" / "student_file").write_text("left behind")
    alive = tmp_path / f"lab-sandbox-{os.getpid()}-x2"
    (alive / "root").mkdir(parents=True)
    other = tmp_path / "lab-sandbox-notapid"
    other.mkdir()
    S._sweep_stale_dirs()
    assert not dead.exists() and alive.exists() and other.exists()
    dead.mkdir()
    S._sweep_stale_dirs()  # once per grader process
    assert dead.exists()


def test_a_value_that_cannot_be_sent_is_not_taken_for_an_untouched_stub():
    """A meta-device tensor raises NotImplementedError while it is encoded: the student wrote code,
    so the report must not say "not implemented yet", but that the result could not be sent back."""
    cells = build(replace={"snr_solution": '''
import torch
def calculate_snr(original, quantized):
    return torch.empty((), device="meta")
def snr_by_format(weights):
    return {}
'''})
    report = grade_cells(cells, lab="lab321", settings=settings())
    known = next(c for c in report.exercises["snr"].checks if c.name == "snr_known_value")
    assert not known.passed and "not implemented" not in known.message, known.message
    assert "could not be sent back" in known.message, known.message

"""Hostile and broken submissions, each with its expected per-exercise scores.

Every case is the model solution with an attack or accident added. The trusted grader must
give exactly the expected scores, never be fooled by what runs in the sandbox, never leave
a process behind, and keep the course folder intact.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import config
from grader.grading.grade import grade_cells
from grader.sandbox import Limits, Sandbox
from helpers import FULL, ROOT, build

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

GARBAGE_SNR = '''
def calculate_snr(original, quantized):
    return 0.0

def snr_by_format(weights):
    return {"int8": 0.0, "int4": 0.0, "fp8": 0.0, "fp4": 0.0}
'''
GARBAGE_ADVISOR = '''
def recommend_precision(model_params_billions, memory_budget_gb=128, task="inference", quality_priority="balanced"):
    return {"precision": "fp4", "memory_gb": 0.0, "fits": True, "reasoning": "trust me, it is fine"}
'''
# Garbage SNR earns nothing: a constant best-format answer counts only beside an snr_by_format that measures
# its input (no points for content-free answers)
ONLY_BEST_FORMAT = {**FULL, "snr": 0.0}


def settings(**limits):
    s = config.load(ROOT)
    s.limits = dataclasses.replace(Limits(), call_timeout=1, cell_timeout=5, notebook_timeout=60,
                                   memory_bytes=3 << 30, **limits)
    s.assignment = "lab321"  # the notebooks graded here are lab321's (the course has two labs)
    return s


def scores(report):
    return {k: e.score for k, e in report.exercises.items()}


CASES = {
    # --- patched comparisons and builtins: garbage answers stay garbage -----------------------
    "patched_comparisons": (dict(replace={"snr_solution": GARBAGE_SNR}, append='''
import builtins, math, numpy, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.allclose = numpy.isclose = lambda *a, **k: True
math.isclose = lambda *a, **k: True
builtins.abs = lambda x: 0
builtins.isinstance = lambda *a: True
'''), ONLY_BEST_FORMAT),
    "input_transformer_blanks_later_cells": (dict(replace={"advisor_solution": GARBAGE_ADVISOR + '''
get_ipython().input_transformers_cleanup.append(lambda lines: ["pass\\n"])
'''}), {**FULL, "advisor": 0.0}),  # a reasoning string alone earns nothing
    "lying_objects": (dict(replace={"snr_solution": '''
class Liar(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 42.0
    def __abs__(self): return 0.0
    def __sub__(self, other): return 0.0
    def __rsub__(self, other): return 0.0

class LyingDict(dict):
    def __eq__(self, other): return True
    def __getitem__(self, k): return Liar(0.0)

def calculate_snr(original, quantized):
    return Liar(0.0)

def snr_by_format(weights):
    return LyingDict()
'''}), ONLY_BEST_FORMAT),
    "code_on_unpickle": (dict(replace={"advisor_solution": '''
import os
class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/unpickled-boom",))
    def __getstate__(self):
        os.system("touch /tmp/unpickled-boom")
        return {}

def recommend_precision(*args, **kwargs):
    return {"precision": Boom(), "memory_gb": Boom(), "fits": Boom(), "reasoning": Boom()}
'''}), {**FULL, "advisor": 0.0}),
    # --- exits, interrupts, loops, memory, processes inside functions --------------------------
    "sys_exit_in_function": (dict(after={"snr_solution": '''
import sys
def calculate_snr(original, quantized):
    sys.exit(0)
'''}), ONLY_BEST_FORMAT),
    "os_exit_in_function": (dict(drop=("memory",), after={"memory_solution": '''
import os
def analyze_model_memory(*a, **k):
    os._exit(0)
'''}), {**FULL, "memory": 0.0}),
    "keyboard_interrupt_in_function": (dict(after={"snr_solution": '''
def calculate_snr(original, quantized):
    raise KeyboardInterrupt
'''}), ONLY_BEST_FORMAT),
    "infinite_loop_in_function": (dict(after={"advisor_solution": '''
def recommend_precision(*a, **k):
    while True:
        pass
'''}), {**FULL, "advisor": 0.0}),
    "memory_bomb_in_function": (dict(after={"memory_solution": '''
def analyze_model_memory(*a, **k):
    hog = [bytearray(1 << 30) for _ in range(64)]
    return hog
'''}), {**FULL, "memory": 0.0}),
    "memory_bomb_at_top_level": (dict(append="hog = bytearray(1 << 40)\n"), FULL),
    "infinite_loop_at_top_level": (dict(append="while True:\n    pass\n"), FULL),
    "spawned_processes": (dict(after={"advisor_solution": '''
import subprocess, os
_real_recommend = recommend_precision
_SPAWNED = []
def recommend_precision(*a, **k):
    # detached grandchildren that try to outlive the grading (once per process: slots are limited)
    if not _SPAWNED:
        _SPAWNED.append(subprocess.Popen(["sh", "-c", "(sleep 777 &) ; sleep 777"], start_new_session=True))
    return _real_recommend(*a, **k)
subprocess.Popen(["sleep", "778"], start_new_session=True)
'''}), FULL),
    # --- forged output -------------------------------------------------------------------------
    "forged_output": (dict(replace={"snr_solution": GARBAGE_SNR}, append='''
import os, sys, json, struct
print("All tests passed! Score: 18/18")
print("All tests passed!", file=sys.stderr)
fake = json.dumps({"op": "result", "id": 1, "ok": True, "value": 13.979}).encode()
for fd in range(0, 64):
    try:
        os.write(fd, struct.pack("<I", len(fake)) + fake)
        os.write(fd, b"\\x00\\xff garbage {not json")
    except OSError:
        pass
'''), ONLY_BEST_FORMAT),
    "channel_scribbler": (dict(append='''
import os
for fd in range(0, 256):
    try:
        os.write(fd, b"\\xff\\xff\\xff\\x7f garbage")
    except OSError:
        pass
'''), FULL),  # the cell that scribbles is skipped; the notebook runs again without it
    "huge_output": (dict(append="print('x' * 50_000_000)\nimport sys\nsys.stderr.write('y' * 10_000_000)\n"), FULL),
    # --- deleted or edited grade cells ---------------------------------------------------------
    "grade_cells_deleted": (dict(drop=("snr", "memory", "advisor")), FULL),
    "grade_cells_edited": (dict(replace={"snr": "print('looks fine to me')", "memory": "pass",
                                         "advisor": "assert True"}), FULL),
    "top_level_exit_kills_notebook": (dict(append="import os\nos._exit(0)\n"), FULL),  # costs only its cell
    "top_level_system_exit": (dict(append="raise SystemExit(1)\n"), FULL),
    "kills_parent_and_group": (dict(append='''
import os, signal
for target in (os.getppid(), 1):
    try:
        os.kill(target, signal.SIGKILL)
    except Exception:
        pass
try:
    os.killpg(0, signal.SIGKILL)
except Exception:
    pass
'''), FULL),  # pid 1 of its own namespace: the grader is out of reach and init ignores its own kills
    # --- honest students must keep their points --------------------------------------------------
    "honest_noise": (dict(after={"snr_solution": '''
import warnings, sys, numpy as np
_snr = calculate_snr
def calculate_snr(original, quantized):
    warnings.warn("a harmless warning")
    print("debug output", file=sys.stderr)
    return np.float64(_snr(original, quantized))
_by = snr_by_format
def snr_by_format(weights):
    return {k: torch.tensor(v) for k, v in _by(weights).items()}  # 0-d tensors
''', "memory_solution": '''
import warnings
warnings.warn("DeprecationWarning-ish noise", DeprecationWarning)
print("stderr noise", file=__import__("sys").stderr)
'''}), FULL),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_case(case):
    spec, expected = CASES[case]
    if case == "kills_parent_and_group" and (os.geteuid() != 0 or config.load(ROOT).isolation != "namespaces"):
        pytest.skip("at the 'process' level a notebook can signal the grader (README: threat model); needs root")
    before = sorted(os.listdir(ROOT))
    report = grade_cells(build(**spec), label=case, lab="lab321", settings=settings())
    got = scores(report)
    if os.geteuid() == 0:
        assert report.isolation == "namespaces", report.isolation_detail
    assert got == expected, "\n".join(f"{c.name}: {c.message}" for e in report.exercises.values() for c in e.checks if not c.passed)
    assert sorted(os.listdir(ROOT)) == before, "the course folder changed"
    assert not Path("/tmp/unpickled-boom").exists(), "code ran on the grader side"
    if case == "channel_scribbler":
        assert any("garbage into the grader's channel" in n for n in report.notes), report.notes
    if case == "top_level_exit_kills_notebook":
        assert any("ended" in n and "skipped" in n for n in report.notes), report.notes


def test_no_process_survives_grading():
    grade_cells(build(**CASES["spawned_processes"][0]), lab="lab321", settings=settings())
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 777" not in ps and "sleep 778" not in ps, "a spawned process outlived the grading"


def test_nothing_of_the_course_is_readable_or_writable():
    if config.load(ROOT).isolation != "namespaces" or os.geteuid() != 0:
        pytest.skip("needs root for the namespaces level (CI runs as root); the README says what 'process' does not defend")
    probe = '''
import os, glob
ROOTS = [%r]
LEAKED = []
for root in ROOTS:
    for rel in ("gradebook.db", "labs/lab321/checks/snr.py", "source/lab321/lab321.ipynb", "course_config.py", "labs/lab321/answers.py"):
        for base in (root, "/proc/1/cwd", "/proc/1/root" + root, "/proc/self/root" + root):
            p = os.path.join(base, rel)
            try:
                with open(p, "rb") as f:
                    LEAKED.append((p, len(f.read())))
            except OSError:
                pass
    try:
        with open(os.path.join(root, "PWNED"), "w") as f:
            f.write("x")
        LEAKED.append("wrote into the course folder")
    except OSError:
        pass
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            LEAKED.append(("visible process", open(f"/proc/{pid}/cmdline").read()[:80])) if "pytest" in open(f"/proc/{pid}/cmdline").read() else None
        except OSError:
            pass
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    LEAKED.append("network")
except OSError:
    pass
HOME_FILES = os.listdir(os.path.expanduser("~")) if os.path.isdir(os.path.expanduser("~")) else []
''' % str(ROOT)
    with Sandbox([probe], limits=settings().limits, level="namespaces", course_root=ROOT) as sb:
        assert sb.run.level == "namespaces", sb.run.detail
        assert sb.get("LEAKED") == []
    assert not (ROOT / "PWNED").exists()


def test_malformed_files_exit_2_with_one_line(tmp_path):
    cases = {"not_json.ipynb": "{ not json", "no_cells.ipynb": '{"metadata": {}}', "binary.ipynb": b"\x00\xff\xfe",
             "deep.ipynb": "[" * 50_000, "deep_dict.ipynb": '{"cells": ' + '{"a": ' * 30_000,
             "latin1.ipynb": '{"cells": [{"cell_type": "code", "source": "caf\xe9"}]}'.encode("latin-1"),
             "huge.ipynb": b" " * (33 << 20)}
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        r = subprocess.run([sys.executable, "-m", "grader", "grade", str(p), "--json"], capture_output=True, text=True)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(tmp_path / "missing.ipynb")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_nbformat3_and_odd_cells_are_read(tmp_path):
    from grader.grading.nbfile import cells_of_text

    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\n", "y = 2"]},
                                                   {"cell_type": "markdown", "source": "hi"}]}]}
    assert cells_of_text(__import__("json").dumps(v3), "v3") == ["x = 1\ny = 2"]
    odd = {"cells": [{"cell_type": "code", "source": 42}, "not a cell", {"cell_type": "code"}]}
    assert cells_of_text(__import__("json").dumps(odd), "odd") == ["42", ""]


def test_notebook_that_swallows_its_timeouts_is_stopped():
    cells = build(append='''
import time
while True:
    try:
        time.sleep(100)
    except BaseException:
        pass
''')
    s = settings()
    s.limits = dataclasses.replace(s.limits, cell_timeout=2, notebook_timeout=6)
    t = time.monotonic()
    report = grade_cells(cells, lab="lab321", settings=s)
    assert time.monotonic() - t < 40
    assert scores(report) == FULL  # the cell is skipped: it costs only itself
    assert any("stopped answering" in n and "skipped" in n for n in report.notes), report.notes


PROCESS_LEVEL_CASES = ["honest_noise", "lying_objects", "os_exit_in_function", "infinite_loop_in_function",
                       "memory_bomb_in_function", "forged_output", "top_level_exit_kills_notebook"]


def python_readable_by_others() -> bool:
    """At 'process' level as root, student code runs as a private uid with no mounts to help it."""
    from grader.sandbox import _keep_paths

    for p in _keep_paths():
        for d in [Path(p), *Path(p).parents]:
            if d.exists() and not d.stat().st_mode & 0o005:
                return False
    return True


@pytest.mark.parametrize("case", PROCESS_LEVEL_CASES)
def test_function_level_defences_hold_at_the_process_level(case):
    """A TA laptop without namespaces gets 'process': calls are still isolated from each other."""
    if os.geteuid() == 0 and not python_readable_by_others():
        pytest.skip("as root, 'process' runs student code as a private uid, which cannot read this Python "
                    "installation (a private folder above it); test_process_level_refuses_unreadable_python "
                    "checks that this is reported, not scored")
    spec, expected = CASES[case]
    s = settings()
    s.isolation = "process"
    s.min_isolation = "process"
    report = grade_cells(build(**spec), label=case, lab="lab321", settings=s)
    assert report.isolation == "process"
    assert scores(report) == expected
    assert "private uid" in report.isolation_detail or os.geteuid() != 0


def test_process_level_refuses_unreadable_python():
    """An environment fault, loud, with the folder named: never zeros for the students."""
    if os.geteuid() != 0 or python_readable_by_others():
        pytest.skip("needs root and a Python installed in a private folder (as on this CI machine)")
    from grader.grading.grade import IsolationError

    s = settings()
    s.isolation = "process"
    s.min_isolation = "process"
    with pytest.raises(IsolationError, match="cannot read the Python installation"):
        grade_cells(build(), lab="lab321", settings=s)


def test_allow_list_filesystem_hides_course_copies_and_installed_packages(tmp_path):
    """The grader installed non-editably (its packages inside site-packages) and a copy of the course
    in an unlisted folder: inside the sandbox `import reference` fails and the seed is unreadable."""
    if os.geteuid() != 0:
        pytest.skip("needs root for the namespaces level (CI runs as root)")
    import shutil
    import uuid

    copy = Path("/srv") / f"lab-course-copy-{uuid.uuid4().hex[:8]}"
    venv = tmp_path / "venv"
    try:
        copy.mkdir(parents=True)
        for name in ("reference", "grader", "labs"):
            shutil.copytree(ROOT / name, copy / name)
        shutil.copy(ROOT / "course_config.py", copy / "course_config.py")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        import sysconfig
        here_site = sysconfig.get_paths()["purelib"]  # torch, numpy, nbgrader... of this environment
        (Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
         / "deps.pth").write_text(here_site + "\n")
        venv_site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; "
                                         "print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True).stdout.strip())
        for name in ("reference", "grader", "labs"):  # what a non-editable `pip install .` puts there
            shutil.copytree(ROOT / name, venv_site / name, ignore=shutil.ignore_patterns("__pycache__"))
        site = subprocess.run([str(venv / "bin" / "python"), "-c", "import reference, os; "
                               "print(os.path.dirname(os.path.dirname(reference.__file__)))"],
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
        assert site.startswith(str(venv)), site  # the installed copy, not this checkout
        probe = f'''
import os, sys
FOUND = []
for extra in ({str(copy)!r}, {site!r}, {str(ROOT)!r}):
    sys.path.insert(0, extra)
for mod in ("reference", "labs.lab321"):
    try:
        m = __import__(mod)
        contents = [f for p in getattr(m, "__path__", []) for f in os.listdir(p)]
        if getattr(m, "__file__", None) or contents:  # an empty masked folder imports as nothing
            FOUND.append(("import", mod, getattr(m, "__file__", None), contents[:5]))
    except ImportError:
        pass
for path in ({str(copy / "course_config.py")!r}, {str(ROOT / "course_config.py")!r},
             {site + "/labs/lab321/answers.py"!r}, {site + "/labs/lab321/checks/snr.py"!r},
             {site + "/grader/sandbox/worker/main.py"!r}, {str(ROOT / "grader/sandbox/worker/keeper.py")!r}):
    try:
        FOUND.append(("read", path, len(open(path).read())))
    except OSError:
        pass
for top in ("/srv", "/opt", "/var", "/home", "/root", "/run", "/mnt", "/tmp", "/work"):
    for dirpath, dirs, files in os.walk(top):
        if "course_config.py" in files or "hidden_seed" in " ".join(files):
            FOUND.append(("walk", dirpath))
'''
        script = f'''
import json, sys
from grader.sandbox import Sandbox
with Sandbox([{probe!r}], level="namespaces") as sb:
    print(json.dumps({{"found": sb.get("FOUND"), "level": sb.run.level, "detail": sb.run.detail}}))
'''
        r = subprocess.run([str(venv / "bin" / "python"), "-c", script], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        out = __import__("json").loads(r.stdout.strip().splitlines()[-1])
        assert out["level"] == "namespaces", out["detail"]
        assert out["found"] == [], out["found"]
        assert "masked" in out["detail"] and "site-packages/grader" in out["detail"], out["detail"]
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_one_unreadable_file_does_not_fail_the_class(tmp_path):
    """A 130 KB notebook of nested brackets beside honest ones: the honest ones are graded."""
    from grader.course import demo

    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "LAB_GRADER_JOBS": "2"}
    root = tmp_path / "course"
    demo.copy_course(root)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lab321", "--force"], cwd=root,
                   env=env, check=True, capture_output=True)
    release = root / "assignments" / "lab321" / "lab321.ipynb"
    for sid in ("alice", "carol"):
        demo.write_submission(release, root / "submitted" / sid / "lab321" / "lab321.ipynb", demo.solution_sources("lab321"))
    bad = root / "submitted" / "bob" / "lab321" / "lab321.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text("[" * 130_000)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "lab321"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=600)
    book = demo.gradebook_scores(root, "lab321")
    assert book.get("alice") == FULL and book.get("carol") == FULL, (book, r.stderr[-2000:])
    assert "bob" not in book or sum(book["bob"].values()) == 0
    assert "RecursionError" not in r.stderr.split("bob")[0] if "bob" in r.stderr else True


FORGE = '''
import os, fcntl, struct, json, time
def _forge(obj):
    b = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    for fd in range(3, 256):
        try:
            fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if fl & os.O_ACCMODE == os.O_WRONLY:
            try:
                os.write(fd, struct.pack("<I", len(b)) + b)
            except OSError:
                pass
'''

FORGED_FRAMES = {
    # a student cannot make its own notebook look like a broken grading machine
    "fake_environment_fault": FORGE + '_forge({"op": "setup-failed", "why": "No module named torch"})\ntime.sleep(2)\n',
    # frames the grader cannot parse cost only the cell that wrote them
    "deep_json_frame": FORGE + '_forge(b"[" * 200000)\ntime.sleep(2)\n',
    "bad_ran_frame": FORGE + '_forge({"op": "ran", "cells": [], "names": 5})\ntime.sleep(2)\n',
}


@pytest.mark.parametrize("case", sorted(FORGED_FRAMES))
def test_forged_frames_in_cells_cost_only_that_cell(case):
    report = grade_cells(build(append=FORGED_FRAMES[case]), label=case, lab="lab321", settings=settings())
    assert scores(report) == FULL, report.notes  # and no exception escaped into the grader
    if case == "fake_environment_fault":
        assert any("skipped" in n and "garbage" in n for n in report.notes), report.notes


def test_forged_huge_reply_is_refused_cheaply():
    """A reply of millions of empty containers would cost the grader GBs to parse: refused unread."""
    import resource

    cells = build(after={"snr_solution": FORGE + '''
_real = calculate_snr
def calculate_snr(original, quantized):
    _forge(b'{"op": "result", "id": 1, "ok": true, "value": [' + b'{},' * 2_000_000 + b'{}]}')
    return _real(original, quantized)
'''})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.monotonic()
    report = grade_cells(cells, lab="lab321", settings=settings())
    assert time.monotonic() - t < 60
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mib < 500, f"the grader grew by {grew_mib:.0f} MiB"
    assert report.exercises["memory"].score == 6 and report.exercises["advisor"].score == 6


def test_hidden_checks_never_echo_a_student_chosen_type_name():
    cells = build(after={"advisor_solution": '''
def recommend_precision(*a, **k):
    raise type("NotImplementedError_" + repr((a, k)).replace(" ", "").replace(":", "="), (Exception,), {})()
'''})
    report = grade_cells(cells, lab="lab321", settings=settings())
    hidden = [c for c in report.exercises["advisor"].checks if c.hidden]
    assert hidden
    for c in hidden:
        assert not c.passed and "NotImplementedError_" not in c.message and "memory_budget" not in c.message, c.message
        assert "exception" not in c.message and "not implemented" not in c.message, c.message  # its fixed text

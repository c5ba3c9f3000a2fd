"""Untrusted bytes are data, never control or cost.

Every frame from a notebook process is student-writable: its size, op and shape are checked
before it is parsed; any number in it (a cell index, a call id) is checked against what the
grader knows; what happens after the first hidden call is reported only in fixed texts; and a
function that hangs costs its own checks, never another exercise's time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grader.sandbox.client as sandbox
from grader import config
from grader.grading.grade import grade_cells
from grader.sandbox.client import (CALL_FRAMES, CELL_FRAMES, MAX_ITEMS, MAX_PROGRESS, PARSE_MEMORY_BOUND, SEALED,
                            SEALED_FATAL, Channel, Limits, Sandbox, StudentError, parse_frame, shape_ok)
from helpers import FULL, ROOT, build, write_notebook

linux = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")


def settings(**limits):
    s = config.load(ROOT)
    base = dict(call_timeout=2, cell_timeout=20, notebook_timeout=120, memory_bytes=3 << 30)
    s.limits = dataclasses.replace(Limits(), **{**base, **limits})
    return s


def scores(report):
    return {k: e.score for k, e in report.exercises.items()}


def texts(report) -> list[str]:
    return list(report.notes) + [c.message for e in report.exercises.values() for c in e.checks]


# ---------------------------------------------------------------------------------------
# the reader: size, op and shape before any parse
# ---------------------------------------------------------------------------------------

def _items(obj) -> int:
    """Brackets, braces, commas and colons outside strings in json.dumps(obj): what shape_ok counts."""
    if isinstance(obj, list):
        return 1 + max(len(obj) - 1, 0) + sum(_items(v) for v in obj)
    if isinstance(obj, dict):
        return 1 + max(len(obj) - 1, 0) + len(obj) + sum(_items(v) for v in obj.values())
    return 0


TRICKY = ['[', '{', ',', ':', '\\', '"', '\\"', '\\\\', '"[', '\\\\"', '[[{{', 'a', '\u00e9', '\U0001f600', '\n']


def test_shape_counts_only_what_lies_outside_strings(monkeypatch):
    """The count agrees with the parse for documents whose strings are full of brackets, quotes
    and backslashes (a sweep of nestings and string contents around a small cap)."""
    import random

    rnd = random.Random(1)

    def doc(depth):
        k = rnd.randrange(4)
        if depth == 0 or k == 0:
            return "".join(rnd.choice(TRICKY) for _ in range(rnd.randrange(6)))
        if k == 1:
            return rnd.choice([0, 1.5, None, True, -7])
        if k == 2:
            return [doc(depth - 1) for _ in range(rnd.randrange(4))]
        return {"".join(rnd.choice(TRICKY) for _ in range(rnd.randrange(4))) + str(i): doc(depth - 1)
                for i in range(rnd.randrange(4))}

    for cap in (0, 3, 10, 30):
        monkeypatch.setattr(sandbox, "MAX_ITEMS", cap)
        for _ in range(300):
            obj = {"op": "ran", "x": doc(4)}
            body = json.dumps(obj).encode()
            assert shape_ok(body) == (_items(obj) <= cap), (cap, _items(obj), body)


def test_an_honest_output_full_of_brackets_is_accepted():
    out = "[" * (3 * MAX_ITEMS) + '"{:,\\' * MAX_ITEMS
    body = json.dumps({"op": "ran", "cells": [{"stdout": out, "stderr": "", "error": None}], "names": []}).encode()
    assert len(body) < CELL_FRAMES["ran"]
    assert parse_frame(body, "ran")["cells"][0]["stdout"] == out


def test_chatty_cells_are_shortened_to_fit_not_refused():
    """Thousand cells printing 20 000 non-ASCII characters each (6 bytes each once escaped): the
    worker shortens the outputs until the "ran" frame fits, and the grader accepts it."""
    from grader.sandbox.worker.codec import ran_frame

    results = [{"stdout": "\u00e9" * 20_000, "stderr": "", "error": None}] * 1000
    body = json.dumps(ran_frame(results, ["x"] * 50_000)).encode()
    assert len(body) <= CELL_FRAMES["ran"]
    got = parse_frame(body, "ran")
    assert got is not None and len(got["cells"]) == 1000 and got["cells"][0]["stdout"].startswith("\u00e9" * 100)


@pytest.mark.parametrize("body", [
    b'{"op": "result", "id": 1, "ok": true, "value": [' + b"[]," * MAX_ITEMS + b"[]]}",  # nested empty containers
    b'{"op": "result", "id": 1, "ok": true, "value": [' + b"0," * MAX_ITEMS + b"0]}",  # numbers
    b'{"op": "result", "id": 1, "ok": true, "value": [' + b'"",' * MAX_ITEMS + b'""]}',  # strings
    b'{"op": "result", "id": 1, "ok": true, "value": "caf\xc3\xa9"}',  # not ASCII: the worker never sends it
    b'{"op": "cell", "op": "result", "id": 1, "ok": true}',  # its op is not its first key
    b'{"id": 1, "op": "result", "ok": true}',
    b'[' * 100_000,
])
def test_frames_past_the_caps_are_refused_unparsed(body, monkeypatch):
    def no_parse(*a, **k):
        raise AssertionError("parsed")

    monkeypatch.setattr(sandbox.json, "loads", no_parse)
    import fcntl

    r, w = os.pipe()
    try:
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: the whole frame fits
        os.write(w, struct.pack("<I", len(body)) + body)
        os.close(w)
        w = -1
        ch = Channel(r)
        try:
            got = ch.recv(time.monotonic() + 0.5, CALL_FRAMES)
        except AssertionError:
            got = "parsed"
        assert got is None and ch.corrupt
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


@pytest.mark.parametrize("op,size", [("cell", MAX_PROGRESS + 1), ("ran", CELL_FRAMES["ran"] + 1),
                                     ("result", 100), ("hello", 100)])
def test_a_frame_is_refused_from_its_first_bytes(op, size):
    """A progress frame larger than a few KiB, or an op the phase does not expect, is refused
    as soon as its header and op are read: the rest is never waited for, read or parsed."""
    head = struct.pack("<I", size) + b'{"op": "%s", "pad": "' % op.encode() + b"x" * 40
    r, w = os.pipe()
    try:
        os.write(w, head)
        ch = Channel(r)
        t = time.monotonic()
        assert ch.recv(t + 30, CELL_FRAMES) is None and ch.corrupt
        assert time.monotonic() - t < 20, "waited for the rest of the frame"
    finally:
        os.close(r)
        os.close(w)


# ---------------------------------------------------------------------------------------
# a class graded beside attackers on the channel
# ---------------------------------------------------------------------------------------

FLOOD = '''
import os, fcntl, struct
def _flood(body, times):
    for fd in range(3, 256):
        try:
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY:
                continue
            fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer, larger writes
        except OSError:
            continue
        try:
            for _ in range(times):
                os.write(fd, struct.pack("<I", len(body)) + body)
        except OSError:
            pass
'''
# progress frames of nested empty containers, while the cells run: 60 MiB, and just under 8 MiB
HUGE_PROGRESS = FLOOD + '_flood(b\'{"op": "cell", "i": 0, "pad": [\' + b"[]," * (20 << 20) + b"[]]}", 3)\n'
LARGE_PROGRESS = FLOOD + '_flood(b\'{"op": "cell", "i": 0, "pad": [\' + b"[]," * 2_700_000 + b"[]]}", 6)\n'

_HWM_RUN = '''
import json, runpy, sys
from grader import config
from grader.grading.canary import run_canary

def hwm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) << 10

run_canary(config.load(None), "lab321")  # torch, the zygote and one grading: what every grading run holds
base = hwm()
sys.argv = ["grader", "class", sys.argv[1], "--lab", "lab321", "--jobs", "2", "--out", sys.argv[2], "--no-report"]
try:
    runpy.run_module("grader", run_name="__main__")
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "grew": hwm() - base}))
'''


@pytest.mark.slow
@linux
def test_flooding_attackers_beside_two_model_solutions_cost_them_nothing(tmp_path):
    """`python -m grader class --jobs 2`: two notebooks that flood their channel with huge
    progress frames beside two model solutions. The model solutions keep full marks and the
    grader grows by less than its stated bound for the two sandboxes parsing at a time."""
    folder = tmp_path / "class"
    write_notebook(build(), folder / "alice.ipynb")
    write_notebook(build(append=HUGE_PROGRESS), folder / "mallory.ipynb")
    write_notebook(build(append=LARGE_PROGRESS), folder / "oscar.ipynb")
    write_notebook(build(), folder / "zoe.ipynb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _HWM_RUN, str(folder), str(tmp_path / "out")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    totals = {}
    for sid in ("alice", "zoe", "mallory", "oscar"):
        rec = json.loads(next((tmp_path / "out" / sid).glob("*.checks.json")).read_text())
        totals[sid] = {k: e["score"] for k, e in rec["exercises"].items()}
    assert totals["alice"] == FULL and totals["zoe"] == FULL, totals
    assert got["grew"] < 2 * PARSE_MEMORY_BOUND, f"the grader grew by {got['grew'] >> 20} MiB"


def _tracebacks(stderr: str) -> str:
    """nbgrader's tracebacks (it logs each where it happened, long before its summary), then the end."""
    starts = [i for i in range(len(stderr)) if stderr.startswith("Traceback", i)]
    return "".join(stderr[i:i + 4000] + "\n...\n" for i in starts[:3]) + stderr[-1500:]


_HWM_AUTOGRADE = '''
import json, sys
from nbgrader.apps.nbgraderapp import NbGraderApp  # nbgrader's own imports belong to the baseline
from grader import config
from grader.grading.canary import run_canary

def hwm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) << 10

run_canary(config.load(None), "lab321")  # the canary nbgrader's hook runs first (cached for this process)
base = hwm()
sys.argv = ["nbgrader", "autograde", "lab321", "--force"]
try:
    NbGraderApp.launch_instance()
    rc = 0
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "grew": hwm() - base}))
'''


@pytest.mark.slow
@linux
def test_flooding_attackers_beside_two_model_solutions_in_nbgrader_autograde(tmp_path):
    """`nbgrader autograde` with grading ahead (the same threads as `class`): the flooding attackers cost
    the two model solutions nothing, and nbgrader's process grows by less than the stated bound."""
    from grader.course import demo

    course = tmp_path / "course"
    demo.copy_course(course)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lab321", "--force"], cwd=course,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    release = course / "assignments" / "lab321" / "lab321.ipynb"
    model = demo.solution_sources("lab321")
    for sid, extra in (("alice", ""), ("mallory", HUGE_PROGRESS), ("oscar", LARGE_PROGRESS), ("zoe", "")):
        sources = {**model, "advisor_solution": model["advisor_solution"] + "\n" + extra}
        demo.write_submission(release, course / "submitted" / sid / "lab321" / "lab321.ipynb", sources)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAB_GRADER_JOBS": "2"}
    r = subprocess.run([sys.executable, "-c", _HWM_AUTOGRADE], cwd=course, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["rc"] in (0, None), _tracebacks(r.stderr)
    assert "prefetched in parallel" in r.stderr, "grading ahead did not run"
    book = demo.gradebook_scores(course, "lab321")
    assert book["alice"] == FULL and book["zoe"] == FULL, book
    assert book["mallory"]["advisor"] == 0.0 and book["oscar"]["advisor"] == 0.0, "the flooding cells did not run"
    assert got["grew"] < 2 * PARSE_MEMORY_BOUND, f"nbgrader grew by {got['grew'] >> 20} MiB"


# ---------------------------------------------------------------------------------------
# numbers the notebook sends are checked against what the grader knows
# ---------------------------------------------------------------------------------------

FORGE = '''
import os, fcntl, struct, json
def _forge(obj):
    b = json.dumps(obj).encode()
    for fd in range(3, 256):
        try:
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                os.write(fd, struct.pack("<I", len(b)) + b)
        except OSError:
            pass
'''
V = 987_654_321


@pytest.mark.slow
@linux
@pytest.mark.parametrize("index", [V, -3, 2, "5"])
def test_a_forged_cell_index_is_garbage_and_never_shown(index):
    """A cell claims another cell is running (out of range, negative, out of order, not an int)
    and ends the process: the cell that wrote it is skipped, as for any garbage, and the
    index never reaches the skip list, a note or a message."""
    cells = build(append=FORGE + f'_forge({{"op": "cell", "i": {index!r}}})\nos._exit(0)\n')
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        run = sb.wait_ready()
        assert run.fatal is None, run.fatal
        assert sb._skip and all(0 <= int(k) < len(cells) for k in sb._skip), sb._skip
        assert list(sb._skip) == [str(len(cells) - 1)], sb._skip  # the forging cell, nothing else
        assert sb.call("calculate_snr", [1.0, 2.0], [1.0, 2.0]) is not None
    report = grade_cells(cells, settings=settings(), lab="lab321")
    assert scores(report) == FULL, report.notes
    for t in texts(report):
        assert str(V) not in t and str(V + 1) not in t and "cell -" not in t, t
    assert any("garbage" in n and f"code cell {len(cells)}" in n for n in report.notes), report.notes


@linux
def test_a_forged_call_id_is_garbage():
    cells = [FORGE + '''
def f():
    _forge({"op": "result", "id": 10 ** 12, "ok": True, "value": 1})
    return 2
def g():
    return 3
''']
    with Sandbox(cells, limits=settings().limits, course_root=ROOT) as sb:
        with pytest.raises(StudentError, match="garbage"):
            sb.call("f")
        assert sb.call("g") == 3  # a fresh process


# ---------------------------------------------------------------------------------------
# after the first hidden call: fixed texts only
# ---------------------------------------------------------------------------------------

@linux
def test_after_the_seal_every_text_is_fixed(monkeypatch):
    """State that survives a restart (the page cache, say) could make a re-run end in a chosen
    cell with a chosen exit code. Here the cells change after the seal, as such a notebook's
    would: what the grader says names neither the cell nor the code."""
    monkeypatch.setattr(sandbox, "MAX_RESTARTS", 3)
    cells = ['''
import os
def boom():
    os._exit(37)
def ok():
    return 1
''', "x = 1", "y = 2", "z = 3"]
    with Sandbox(list(cells), limits=settings().limits, course_root=ROOT) as sb:
        with pytest.raises(StudentError, match="exit code 37"):  # before: the details help the student
            sb.call("boom")
        assert sb.call("ok") == 1
        sb.seal()
        sb.cells[1:] = ["import os\nos._exit(41)\n"] * 3  # every re-run now ends in a cell of its choosing
        with pytest.raises(StudentError) as e1:
            sb.call("boom")
        with pytest.raises(StudentError) as e2:
            sb.call("ok")
        said = [str(e1.value), str(e2.value), sb.run.fatal, *sb._skip.values()]
        assert sb.run.fatal == SEALED_FATAL
        for t in said[:3]:
            assert "37" not in t and "41" not in t and "code cell" not in t and "signal" not in t, t
            assert SEALED in t, t


# ---------------------------------------------------------------------------------------
# a function that hangs is treated like one that crashes
# ---------------------------------------------------------------------------------------

GRADED = {"calculate_snr": "snr_solution", "snr_by_format": "snr_solution",
          "analyze_model_memory": "memory_solution", "recommend_precision": "advisor_solution",
          "e4m3_encode": "quantizer_solution", "nvfp4_encode": "quantizer_solution",
          "int8_per_channel": "weights_solution", "excess_kurtosis": "weights_solution"}


def _exercise_of(gid: str) -> str:
    return gid.split("_")[0]


@pytest.mark.slow
@linux
@pytest.mark.parametrize("fn", sorted(GRADED))
def test_an_endless_loop_costs_only_its_own_checks(fn):
    """Each graded function in turn replaced by an endless loop. Its timeouts are counted like
    crashes (two, then it is not called again) and are not charged to the notebook's budget:
    every other exercise keeps full marks, with a budget that a few timeouts would use up."""
    from helpers import solution_cells

    gids = {gid for gid, _ in solution_cells()}
    assert GRADED[fn] in gids, (fn, sorted(g for g in gids if g))
    cells = build(after={GRADED[fn]: f"def {fn}(*args, **kwargs):\n    while True:\n        pass\n"})
    # The cells and the other calls need 3-12 s here; a cell that calls the loop (minilm_outliers
    # calls the weights functions) costs its cell timeout, as any slow cell does.
    s = settings(call_timeout=6, cell_timeout=8, notebook_budget=30)
    report = grade_cells(cells, settings=s, lab="lab321")
    got = scores(report)
    mine = _exercise_of(GRADED[fn])
    assert {k: v for k, v in got.items() if k != mine} == {k: v for k, v in FULL.items() if k != mine}, \
        [f"{c.name}: {c.message}" for e in report.exercises.values() for c in e.checks if not c.passed]
    assert got[mine] < FULL[mine]
    failed = [c for c in report.exercises[mine].checks if not c.passed and not c.hidden]
    assert any("not called again" in c.message for c in report.exercises[mine].checks if not c.hidden) or \
        len(failed) <= 2, [c.message for c in failed]

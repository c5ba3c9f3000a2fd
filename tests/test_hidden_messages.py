"""A hidden check's message is a fixed text, whatever the student's code returns, raises, prints or
how it dies: nothing the student chooses (a count of wrong codes, an exception's type or message, an
exit code) can carry the hidden inputs out through a report.

Every variant is the model solution with one extra cell: each graded function answers the public
checks' inputs as the model does (the public inputs are recorded by running the public checks on
the model solution in this process) and misbehaves on every other input, i.e. on the hidden ones,
in its own way, often chosen from the input as an attack would. The hidden checks are taken from the
registry (the lab's LAB.exercises.checks), the graded functions and globals from the public checks' calls.
"""

from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import config
from grader.grading.grade import grade_cells, run_check
from grader.sandbox import Limits, decode, encode_arg
from grader.sandbox.worker import codec
from labs.lab321 import LAB

CHECKS = LAB.exercises.checks
from helpers import ROOT, LocalStudent, build

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

HIDDEN = [c for c in CHECKS if c.hidden]

# Runs in this process (recording) and in the notebook (deciding): the same arguments give the same key.
FINGERPRINT = '''
def _lab_fp(name, args, kwargs):
    import hashlib

    def one(v):
        if hasattr(v, "detach"):
            a = v.detach().cpu().contiguous()
            return ("T", tuple(a.shape), str(a.dtype), hashlib.sha256(a.numpy().tobytes()).hexdigest()[:20])
        if v is None or isinstance(v, (bool, str)):
            return repr(v)
        if isinstance(v, (int, float)):
            return repr(float(v))
        if isinstance(v, (list, tuple)):
            return tuple(one(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((str(k), one(x)) for k, x in v.items()))
        return type(v).__name__
    return repr((name, one(list(args)), one(dict(kwargs))))
'''

# The extra cell: the @NAMES@ are filled in (the public keys, the graded names, the variant).
ATTACK = FINGERPRINT + '''
import os, sys, torch

def _lab_k(args, kwargs):
    """A number drawn from the input (as an attack that encodes the hidden input would)."""
    for v in list(args) + list(kwargs.values()):
        if hasattr(v, "detach") and v.numel():
            x = float(v.detach().reshape(-1)[0].nan_to_num(0.0))
            return 1 + int(abs(x) * 1000) % 53
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return 1 + int(abs(v) * 10) % 53
    return 1

def _lab_spoil(r, k):
    """A wrong answer of the right form: k spoiled codes, values off by k, flipped flags."""
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + k
    if isinstance(r, str):
        return r + "x" * k
    if r is None:
        return k
    if isinstance(r, dict):
        return {key: _lab_spoil(v, k) for key, v in r.items()}
    if isinstance(r, (list, tuple)):
        return [_lab_spoil(v, k) for v in r]
    if hasattr(r, "detach"):
        t = r.detach().clone()
        if t.dim() == 0:
            return float(t) + k
        flat = t.reshape(-1)
        n = min(k, flat.numel())
        if t.dtype.is_floating_point:
            flat[:n] = flat[:n] + (flat.abs().nan_to_num(0.0, 0.0, 0.0).max() + 1)
        else:
            flat[:n] = flat[:n] ^ 1
        return flat.reshape(t.shape)
    return r

_LAB_PUBLIC = @PUBLIC@

_LAB_DEPTH = [0]  # a graded function called by another (snr_by_format -> calculate_snr) answers as the model

def _lab_hide(name, fn, behave):
    def wrapped(*args, **kwargs):
        public = _LAB_DEPTH[0] > 0 or _lab_fp(name, args, kwargs) in _LAB_PUBLIC
        _LAB_DEPTH[0] += 1
        try:
            if public:
                return fn(*args, **kwargs)
            return behave(fn, args, kwargs, _lab_k(args, kwargs))
        finally:
            _LAB_DEPTH[0] -= 1
    return wrapped

@BEHAVIOURS@
for _n, _b in @ASSIGN@.items():
    globals()[_n] = _lab_hide(_n, globals()[_n], globals()[_b])
for _n in @GLOBALS@:
    globals()[_n] = _lab_spoil(globals()[_n], @SPOIL_K@)
'''

# What a graded function does on a hidden input: name -> body, with fn, args, kwargs and k (from the input).
# Even and odd entries alternate between the notebooks (see _assignments): os._exit is even, sys.exit odd,
# so half of the notebooks end their process during hidden calls and half do not.
BEHAVIOURS = {
    "one_wrong": "return _lab_spoil(fn(*args, **kwargs), 1)",
    "wrong_by_input": "return _lab_spoil(fn(*args, **kwargs), k)",
    "seven_wrong": "return _lab_spoil(fn(*args, **kwargs), 7)",
    "wrong_size_list": "return list(range(k + 2))",
    "wrong_size_tensor": "return torch.zeros(k + 40, dtype=torch.uint8)",
    "none": "return None",
    "inputs_as_text": "return repr((args, kwargs))[:300]",
    "value_error_with_inputs": "raise ValueError('LEAK ' + repr((args, kwargs))[:200])",
    "key_error_by_input": "raise KeyError(k)",
    "own_exception_class": "raise type('Leak%d' % k, (Exception,), {})('leak %d' % k)",
    "os_exit_by_input": "sys.stdout.flush(); os._exit(k)",
    "not_implemented": "raise NotImplementedError('not yet %d' % k)",
    "prints_then_wrong": ("print('LEAK-OUT', repr(args)[:500]); print('LEAK-ERR', k, file=sys.stderr); "
                          "return _lab_spoil(fn(*args, **kwargs), k)"),
    "sys_exit_by_input": "sys.exit(k)",
    "unsendable": "return object()",
    "prints_then_raises": "print('LEAK-OUT', k); sys.stderr.write('LEAK-ERR %d' % k); raise RuntimeError(k)",
}
NOTEBOOKS = 4  # each function meets 4 behaviours; together the notebooks use every behaviour


def _assignments(functions: list[str]) -> list[dict[str, str]]:
    """Per notebook, a behaviour per function: function i of notebook j gets entry i * stride + j."""
    names = list(BEHAVIOURS)
    stride = max(1, len(names) // len(functions))
    return [{f: names[(i * stride + j) % len(names)] for i, f in enumerate(functions)} for j in range(NOTEBOOKS)]


def _notebook(rec, assign: dict[str, str], spoil_k: int) -> str:
    defs = "\n".join(f"def {b}(fn, args, kwargs, k):\n    {body}\n" for b, body in BEHAVIOURS.items())
    cell = ATTACK
    for mark, value in (("@PUBLIC@", repr(sorted(rec.keys))), ("@BEHAVIOURS@", defs), ("@ASSIGN@", repr(assign)),
                        ("@GLOBALS@", repr(sorted(rec.globals))), ("@SPOIL_K@", str(spoil_k))):
        cell = cell.replace(mark, value)
    return cell


def _settings():
    s = config.load(ROOT)
    s.limits = dataclasses.replace(Limits(), call_timeout=5, cell_timeout=60, notebook_timeout=180,
                                   memory_bytes=3 << 30)
    return s


class _Recorder(LocalStudent):
    """The model solution in this process, keeping the key of every argument list it is called with."""

    def __init__(self):
        super().__init__()
        ns: dict = {}
        exec(FINGERPRINT, ns)
        self.fp = ns["_lab_fp"]
        self.keys: set[str] = set()
        self.functions: set[str] = set()
        self.globals: set[str] = set()
        self.check = ""
        self.reading_globals: set[str] = set()  # public checks that read a graded global

    def call(self, name, *args, timeout=None, **kwargs):
        a, k = codec.to_torch(encode_arg(list(args))), codec.to_torch(encode_arg(kwargs))
        self.keys.add(self.fp(name, a, k))
        self.functions.add(name)
        return super().call(name, *args, timeout=timeout, **kwargs)

    def get(self, name):
        self.globals.add(name)
        self.reading_globals.add(self.check)
        return super().get(name)


@pytest.fixture(scope="module")
def graded():
    s = _settings()
    rec = _Recorder()
    for c in CHECKS:
        if not c.hidden:
            rec.check = c.name
            assert run_check(rec, c, s.hidden_seed).passed, c.name
    assert rec.functions and HIDDEN

    assigns = _assignments(sorted(rec.functions))
    assert {b for a in assigns for b in a.values()} == set(BEHAVIOURS)
    cells = [build(append=_notebook(rec, a, j + 1)) for j, a in enumerate(assigns)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda c: grade_cells(c, settings=s, lab="lab321"), cells))
    return list(zip(assigns, reports)), rec.reading_globals


def _checks(report):
    return {c.name: c for e in report.exercises.values() for c in e.checks}


def test_every_hidden_check_fails_with_one_text_whatever_the_code_does(graded):
    reports, reading_globals = graded
    names = {c.name for c in CHECKS}
    texts: dict[str, dict[str, str]] = {c.name: {} for c in HIDDEN}  # check -> behaviour -> message
    for j, (assign, report) in enumerate(reports):
        results = _checks(report)
        assert set(results) == names, assign
        # the functions misbehaved on hidden inputs only: only public checks of a spoiled global fail
        public_fails = {n for n, c in results.items() if not c.hidden and not c.passed}
        assert public_fails <= reading_globals, (assign, {n: results[n].message for n in public_fails})
        for c in HIDDEN:
            if not results[c.name].passed:
                texts[c.name][f"notebook {j}"] = results[c.name].message
    for c in HIDDEN:
        assert len(texts[c.name]) >= 2, (c.name, texts[c.name])  # attacked in more than one way
        assert len(set(texts[c.name].values())) == 1, (c.name, texts[c.name])
        text = next(iter(texts[c.name].values()))
        assert "LEAK" not in text and "Leak" not in text and "exit" not in text, (c.name, text)


def _notes(graded) -> dict[str, tuple[str, ...]]:
    reports, _ = graded
    return {f"notebook {j}": tuple(report.notes) for j, (_, report) in enumerate(reports)}


def test_notes_after_hidden_calls_carry_no_student_text(graded):
    notes = _notes(graded)
    assert not any("LEAK" in n or "Leak" in n for ns in notes.values() for n in ns), notes


# Nothing that happens after the first hidden call becomes a note (grade_cells notes only the public phase).
def test_notes_after_hidden_calls_are_the_same_whatever_the_code_does(graded):
    notes = _notes(graded)
    assert len(set(notes.values())) == 1, notes

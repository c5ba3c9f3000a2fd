"""The sandbox's worker as code: a package of one module per mechanism run as a file, never a string.

The zygote is ``python -I grader/sandbox/worker/main.py CONFIG`` (a short command line naming the
file; tracebacks name file and line) and imports nothing of the grader; the grader and the worker
share one codec (framing, frame limits, plain data) and one typed spawn spec, checked on load; the
seccomp policy is written as system call names and compiled per architecture.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox import Sandbox, client
from grader.sandbox.worker import codec, seccomp, syscalls
from grader.sandbox.worker.spec import Spec, SpecError

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")


def a_spec(**changes) -> dict:
    sb = Sandbox(["x = 1"], level="process")
    try:
        return {**sb._spec().to_dict(), **changes}
    finally:
        sb.close()


def test_spawn_spec_crosses_as_json_by_field_name_and_comes_back_equal():
    data = a_spec()
    spec = Spec.from_dict(json.loads(json.dumps(data)))
    assert spec.to_dict() == data and spec == Spec.from_dict(data)
    assert set(data) == {"level", "device", "workdir", "rootdir", "mask", "keep", "memory_bytes", "nproc", "cpus",
                         "cpu_seconds", "file_bytes", "cell_timeout", "max_output", "host_uid"}


@pytest.mark.parametrize("change, words", [
    ({"bogus": 1}, "unknown fields ['bogus']"),
    ({"nproc": "64"}, "'nproc': expected <class 'int'>, got str"),
    ({"nproc": True}, "'nproc': expected <class 'int'>, got bool"),
    ({"mask": ["/a", 3]}, "'mask': expected a list of strings"),
    ({"level": "none"}, "'level': 'none' is not one of"),
    ({"device": "tpu"}, "'device': 'tpu' is not one of"),
])
def test_a_spawn_spec_with_a_wrong_field_is_refused_by_name(change, words):
    with pytest.raises(SpecError) as err:
        Spec.from_dict(a_spec(**change))
    assert words in str(err.value)


def test_a_spawn_spec_missing_a_field_is_refused_by_name():
    data = a_spec()
    del data["host_uid"]
    with pytest.raises(SpecError, match=r"missing fields \['host_uid'\]"):
        Spec.from_dict(data)


def test_frame_limits_and_plain_data_are_the_workers_own():
    """One definition for both sides: the grader's reader caps what the worker's writer fits into."""
    assert client.MAX_FRAME == codec.MAX_RAN and client.MAX_RESULT == codec.MAX_RESULT
    assert client.MAX_CONTROL == codec.MAX_CONTROL and client.MAX_PROGRESS == codec.MAX_PROGRESS
    assert client.decode is codec.decode and client.encode_arg is codec.encode_arg
    assert client.frame({"op": "x"}) == codec.frame({"op": "x"})


@pytest.mark.parametrize("arch", sorted(syscalls.NUMBERS))
def test_seccomp_policy_by_name_compiles_on_each_architecture(arch):
    prog = seccomp.program(arch)
    refused = [syscalls.number(name, arch) for name in seccomp.REFUSED]
    assert len(set(refused)) == len(refused) == len(set(seccomp.REFUSED))  # no two names share a number
    checked = [k for code, jt, jf, k in prog if code == seccomp.JEQ_K][1:]  # after the arch check
    assert sorted(refused) == checked[:len(refused)]
    assert checked[len(refused):] == [syscalls.number("clone3", arch), syscalls.number("clone", arch)]
    assert prog[1][3] == syscalls.AUDIT_ARCH[arch] and prog[-1] == (seccomp.RET_K, 0, 0, seccomp.SECCOMP_RET_ALLOW)


def test_seccomp_numbers_match_the_kernel_tables():
    """A few numbers from each table, as the kernel defines them (a wrong one would refuse the wrong call)."""
    assert [syscalls.number(n, "x86_64") for n in ("unshare", "mount", "pivot_root", "ptrace", "bpf", "clone")] \
        == [272, 165, 155, 101, 321, 56]
    assert [syscalls.number(n, "aarch64") for n in ("unshare", "mount", "pivot_root", "ptrace", "bpf", "clone")] \
        == [97, 40, 41, 117, 280, 220]
    assert syscalls.number("clone3", "aarch64") == syscalls.number("clone3", "x86_64") == 435


@linux_only
def test_worker_errors_name_their_file_and_line():
    r = subprocess.run([sys.executable, "-I", str(client.WORKER_MAIN), "{}"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert f'File "{client.WORKER_MAIN}", line ' in r.stderr, r.stderr[-2000:]
    assert "<string>" not in r.stderr


@linux_only
@pytest.mark.slow
def test_zygote_is_a_short_command_line_naming_its_file_and_imports_nothing_of_the_grader():
    cells = ['import sys\nMODS = sorted(m for m in sys.modules if m.split(".")[0] in '
             '("grader", "reference", "labs", "course_config"))\nPATH = [p for p in sys.path if "grader" in p]']
    with Sandbox(cells) as sb:
        assert sb.get("MODS") == [] and sb.get("PATH") == []
        argv = Path(f"/proc/{client.zygote().proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[1:3] == [b"-I", str(client.WORKER_MAIN).encode()], argv[:3]
    assert len(b" ".join(argv)) < 400, argv


@linux_only
@pytest.mark.slow
def test_the_keeper_refuses_a_spec_it_does_not_know(monkeypatch):
    """A grader and a worker that disagree on the spec: an environment fault naming the field, no notebook run."""
    real = Spec.to_dict
    monkeypatch.setattr(Spec, "to_dict", lambda self: {**real(self), "bogus": 1})
    with Sandbox(["x = 1"], allow_fallback=False) as sb:
        assert sb.run.fault and "unknown fields ['bogus']" in sb.run.fault, sb.run.fault


def test_the_sandbox_layer_imports_nothing_above_it():
    # The three layers (docs/architecture.md): the sandbox imports nothing of grading, the course tools or a lab.
    # Importing the sandbox alone in a fresh interpreter must load none of them.
    code = ("import sys; import grader.sandbox; "
            "print(sorted(m for m in sys.modules if m.startswith(('grader.grading', 'grader.course', 'labs', "
            "'reference'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"the sandbox layer imported modules above it: {out}"

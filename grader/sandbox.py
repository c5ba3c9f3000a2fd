"""Run a student notebook in an isolated worker process and call its functions.

The worker (``worker_src.py``) runs as ``python -I -c <source>`` with fresh pipes, a fresh
temporary working directory, its own session, rlimits, and where the OS allows, its own
mount/pid/network namespaces with the course folder, homes and /tmp hidden and the uid
dropped to ``nobody``. Only length-prefixed JSON crosses back; :func:`decode` below turns
it into numbers, strings, lists, dicts and numpy arrays and nothing else.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import site
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

LEVELS = ("none", "process", "namespaces")  # weakest to strongest
WORKER_SOURCE = (Path(__file__).with_name("worker_src.py")).read_text()
MAX_FRAME = 256 << 20


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 60.0  # seconds per notebook cell
    notebook_timeout: float = 180.0  # seconds for all cells together (the lab's own cells take ~2 s)
    call_timeout: float = 10.0  # seconds per graded function call
    memory_bytes: int = 4 << 30
    cpu_seconds: int = 600
    nproc: int = 64
    file_bytes: int = 64 << 20
    max_output: int = 20_000  # characters of stdout/stderr kept per cell


class StudentError(Exception):
    """A call into the student's code failed (exception, timeout, crash); the message says how."""


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: Optional[str] = None


@dataclass
class NotebookRun:
    level: str = "none"
    detail: str = ""
    cells: list[CellResult] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    fatal: Optional[str] = None  # why the notebook's process could not be used, if it could not


def decode(obj: Any) -> Any:
    """Plain JSON data -> Python values; arrays -> numpy arrays. Refuses anything else."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            dt, shape, b64 = obj["__array__"]
            dtype = np.dtype(dt)
            if dtype.kind not in "biuf" or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise ValueError("malformed array")
            arr = np.frombuffer(base64.b64decode(b64), dtype=dtype)
            return arr.reshape(shape).copy()
        if set(obj) == {"__float__"}:
            if obj["__float__"] not in ("nan", "inf", "-inf"):
                raise ValueError("malformed float")
            return float(obj["__float__"])
        return {str(k): decode(v) for k, v in obj.items()}
    raise ValueError(f"unexpected {type(obj).__name__}")


def encode_arg(value: Any) -> Any:
    """Grader-side arguments -> plain data (torch tensors and numpy arrays as arrays)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        return {"__array__": [a.dtype.str, list(a.shape), base64.b64encode(a.tobytes()).decode()]}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return {"__float__": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (list, tuple)):
        return [encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_arg(v) for k, v in value.items()}
    return value


def best_level() -> str:
    """The strongest level this machine can probably give (the worker reports what it got)."""
    if os.geteuid() == 0:
        return "namespaces"
    try:
        if Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() == "0":
            return "process"
    except OSError:
        pass
    return "namespaces"


def _keep_paths() -> list[str]:
    """The Python installation the worker needs to see (read-only) when paths are hidden."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[key])
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths if p)


def _hide_paths(course_root: Optional[Path], extra: tuple[str, ...] = ()) -> list[str]:
    hide = ["/home", "/root", "/tmp", "/var/tmp", "/dev/shm", "/run/user", "/mnt", "/media", "/srv"]
    # The grader's own code and the references (hidden checks, trusted answers), wherever
    # installed; and the checkout they live in, when run from one.
    here = Path(__file__).resolve().parent
    hide += [str(here), str(here.parent / "reference")]
    if (here.parent / "pyproject.toml").is_file():
        hide.append(str(here.parent))
    if course_root is not None:
        hide.append(str(Path(course_root).resolve()))
    hide.extend(extra)
    return [h for h in hide if os.path.isdir(h)]


class Sandbox:
    """One student notebook in one isolated worker. Use as a context manager."""

    def __init__(self, cells: list[str], *, limits: Limits = Limits(), level: Optional[str] = None,
                 course_root: Optional[Path] = None, hide: tuple[str, ...] = (), device: str = "cpu"):
        self.cells = cells
        self.limits = limits
        self.level = level or best_level()
        self.course_root = course_root
        self.hide = hide
        self.device = device
        self.proc: Optional[subprocess.Popen] = None
        self.run = NotebookRun()
        self._next_id = 0
        self._buf = b""
        self._tmp: Optional[str] = None
        self._corrupt = False
        self._retried = False

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> NotebookRun:
        """Launch the worker and wait until the notebook's cells have run."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the worker and hand it the cells; return at once (see :meth:`wait_ready`)."""
        lim = self.limits
        self._tmp = tempfile.mkdtemp(prefix="lab-sandbox-")
        os.chmod(self._tmp, 0o755)
        workdir = os.path.join(self._tmp, "work") if self.level != "namespaces" else "/tmp/work"
        cfg = {
            "level": "namespaces" if self.level == "namespaces" else "process",
            "require": None,
            "device": self.device,
            "workdir": workdir,
            "hide": _hide_paths(self.course_root, self.hide),
            "keep": _keep_paths(),
            "memory_bytes": lim.memory_bytes, "cpu_seconds": lim.cpu_seconds, "nproc": lim.nproc,
            "file_bytes": lim.file_bytes, "cell_timeout": lim.cell_timeout, "max_output": lim.max_output,
        }
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cfg["fds"] = [req_r, rep_w]  # the worker moves them to 3 and 4
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": workdir,
               "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}

        self._log = open(os.path.join(self._tmp, "worker.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WORKER_SOURCE, json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            pass_fds=(req_r, rep_w), start_new_session=True, env=env,
            cwd=self._tmp,
        )
        os.close(req_r)
        os.close(rep_w)
        self._w, self._r = req_w, rep_r
        self._send({"op": "run", "cells": self.cells})  # the worker reads it after its hello

    def wait_ready(self) -> NotebookRun:
        lim = self.limits
        if self.run.level != "none" or self.run.fatal:
            return self.run
        hello = self._recv(time.monotonic() + 60)
        if (not hello or hello.get("op") != "hello") and self.level == "namespaces" and not self._retried:
            # Namespaces were allowed but a later step (a mount) was refused: fall back once.
            why = self._log_tail().strip().splitlines()[-1:] or ["no output"]
            self.close()
            self.level, self._retried = "process", True
            self.run = NotebookRun()
            self.launch()
            run = self.wait_ready()
            run.detail = f"namespaces failed ({why[0][:200]}); " + run.detail
            return run
        if not hello or hello.get("op") != "hello":
            self.run.fatal = "the sandbox did not start: " + self._log_tail()
            return self.run
        self.run.level = hello.get("level") if hello.get("level") in LEVELS else "none"
        self.run.detail = str(hello.get("detail", ""))
        ran = self._recv(time.monotonic() + lim.notebook_timeout + 10)
        if not ran or ran.get("op") != "ran" or not isinstance(ran.get("cells"), list):
            self.run.fatal = self._death_reason("while running the notebook's cells", lim.notebook_timeout + 10)
            self.run.cells = [CellResult(error="not run") for _ in self.cells]
            return self.run
        for c in ran["cells"][: len(self.cells)]:
            c = c if isinstance(c, dict) else {}
            self.run.cells.append(CellResult(str(c.get("stdout", ""))[: lim.max_output],
                                             str(c.get("stderr", ""))[: lim.max_output],
                                             None if c.get("error") is None else str(c.get("error"))[:2000]))
        self.run.names = [str(n) for n in ran.get("names", []) if isinstance(n, str)][:10_000]
        return self.run

    def close(self) -> None:
        if self.proc is not None:
            self.close_worker()
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
            for fd in (self._w, self._r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.proc = None
            self._log.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- calls -------------------------------------------------------------------------
    def call(self, name: str, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """Call the student's ``name(*args, **kwargs)``; return plain data or raise StudentError."""
        return self._request("call", name, args, kwargs, timeout)

    def get(self, name: str) -> Any:
        """Return the value of the student's global ``name`` as plain data."""
        return self._request("get", name, (), {}, None)

    def _request(self, op, name, args, kwargs, timeout):
        if self.run.fatal:
            raise StudentError(self.run.fatal)
        if self.proc is None or self.proc.poll() is not None:
            self.run.fatal = self._death_reason("before this call", 0)
            raise StudentError(self.run.fatal)
        timeout = float(timeout or self.limits.call_timeout)
        self._next_id += 1
        rid = self._next_id
        self._send({"op": op, "id": rid, "name": name, "args": encode_arg(list(args)),
                    "kwargs": encode_arg(kwargs), "timeout": timeout})
        deadline = time.monotonic() + timeout + 10
        while True:
            reply = self._recv(deadline)
            if reply is None:
                self.run.fatal = self._death_reason(f"during the call to {name}()", timeout)
                self.close_worker()
                raise StudentError(self.run.fatal)
            if reply.get("op") == "result" and reply.get("id") == rid:
                break  # anything else is noise the student's code wrote to our pipe
        if reply.get("ok") is not True:
            raise StudentError(str(reply.get("error", "the call failed"))[:2000])
        try:
            return decode(reply.get("value"))
        except (ValueError, TypeError, KeyError) as exc:
            raise StudentError(f"the returned value could not be read ({exc})") from None

    def close_worker(self) -> None:
        """Kill the worker's whole process group (the worker keeps its pipes until close())."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- framing -----------------------------------------------------------------------
    def _send(self, obj) -> None:
        data = json.dumps(obj).encode()
        try:
            os.write(self._w, struct.pack("<I", len(data)))
            view = memoryview(data)
            while view:
                view = view[os.write(self._w, view):]
        except (BrokenPipeError, OSError):
            pass

    def _recv(self, deadline: float) -> Optional[dict]:
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack("<I", self._buf[:4])
                if n > MAX_FRAME:
                    self._corrupt = True
                    return None
                if len(self._buf) >= 4 + n:
                    body, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
                    try:
                        obj = json.loads(body)
                    except ValueError:
                        continue  # a forged or broken frame: skip it
                    if isinstance(obj, dict):
                        return obj
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self._r], [], [], min(left, 1.0))
            if not r:
                continue
            try:
                chunk = os.read(self._r, 1 << 20)
            except OSError:
                return None
            if not chunk:
                return None
            self._buf += chunk

    def _death_reason(self, when: str, timeout: float) -> str:
        if self._corrupt:
            self.close_worker()
            return (f"the notebook wrote garbage into the grader's channel {when}; nothing more it returns "
                    "can be trusted. Do not write to file descriptors you did not open.")
        if self.proc is None:
            return f"the notebook's process was not running {when}"
        try:
            code = self.proc.wait(timeout=2)  # EOF usually means it is exiting: give it a moment
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            self.close_worker()
            return f"the notebook's process stopped answering {when} (no reply within {timeout:.0f} s); it was stopped"
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"the notebook's process ended {when} ({why}); did the notebook call exit(), os._exit() or kill itself?"

    def _log_tail(self) -> str:
        try:
            self._log.flush()
            return Path(self._log.name).read_text(errors="replace")[-1500:] or "(no output)"
        except OSError:
            return "(no log)"

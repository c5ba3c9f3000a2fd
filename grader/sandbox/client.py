"""Run a student notebook in an isolated process and call its functions.

One clean, warm *zygote* per grading run (``python -I grader/sandbox/worker/main.py``: torch,
numpy, IPython and matplotlib imported once, CUDA never touched, nothing of the grader in its
memory) forks a *keeper* per notebook, which gives the notebook process a private uid, a
cgroup, namespaces and rlimits, and kills every process it leaves behind (see the package
``worker/``, one module per mechanism). Calls run inside the notebook process, so CUDA works; a crash, exit,
timeout or memory bomb ends that process and the next call gets a fresh one (the cells run
again). Only length-prefixed JSON crosses back, read with deadlines, per-op size caps and shape
checks before it is parsed; :func:`decode` turns it into numbers, strings, lists, dicts and numpy
arrays and nothing else.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import select
import shutil
import site
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


from .text import clean
from .worker import codec
from .worker.codec import decode, encode_arg, frame  # noqa: F401 - the sandbox's plain data, shared with the worker
from .worker.spec import Spec

LEVELS = ("none", "process", "namespaces")  # weakest to strongest
WORKER_MAIN = Path(__file__).resolve().with_name("worker") / "main.py"  # the zygote, run as a file
# Every frame a notebook process sends is untrusted bytes: its size, its op and its shape are
# checked before it is parsed, whatever its op, so that parsing one costs the grader a bounded
# time and memory (the notebook may write its own frames into the channel).
# The limits are the worker's own (worker/codec.py), defined once for both sides.
MAX_FRAME = codec.MAX_RAN  # "ran": the cells' outputs (the worker shortens them to fit)
MAX_RESULT = codec.MAX_RESULT  # "result": one call's reply
MAX_CONTROL = codec.MAX_CONTROL  # "hello", "setup-failed" and the keeper's status frames
MAX_PROGRESS = codec.MAX_PROGRESS  # "cell": which code cell runs now (an index; a real one is ~25 bytes)
# Values, keys and containers in one frame. Each costs the parser 30-70 bytes for 2-3 bytes of
# input (an empty list ~70): uncapped, an 8 MiB frame of "[]," held the GIL for 11 s, a 60 MiB
# one for 24 s and 2.4 GiB. The checks' inputs have a few thousand elements: a real reply has fewer.
MAX_ITEMS = 250_000
# What parsing one frame can make a sandbox's reader hold at once: the buffer and the body (2 x
# MAX_FRAME + a 1 MiB read), the text json decodes (MAX_FRAME: frames are ASCII), its strings (up
# to 4 x MAX_FRAME: one astral escape widens a whole string) and MAX_ITEMS objects (< 24 MiB).
# Measured worst case (benchmarks/bench_channel.py): ~50 MiB beside the buffer. One sandbox parses
# one frame at a time, so grading J notebooks in parallel adds at most J x this.
PARSE_MEMORY_BOUND = 7 * MAX_FRAME + (32 << 20)  # 88 MiB
# Bytes of "ran" and "result" frames one notebook may have parsed over its whole grading (an honest
# one: well under 1 MiB). The largest frame holds the GIL for ~0.1-0.2 s, so a notebook that sends
# nothing but the largest frames costs the grader's other threads at most ~1-2 s all told.
MAX_PARSED = 8 * MAX_FRAME
# What the notebook process needs; a grading environment without one of them is broken
# (an environment fault for the TA, never a student's zero).
WORKER_IMPORTS = ("numpy", "torch", "IPython", "traitlets", "matplotlib")
MAX_RESTARTS = 24  # fresh notebook processes per notebook after crashing cells or calls
MAX_CRASHES_PER_FUNCTION = 2  # after this many, a function that ends the process is not called again


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 60.0  # seconds per notebook cell
    notebook_timeout: float = 180.0  # seconds for all cells together, per run of them (the lab's take ~1 s)
    notebook_budget: float = 90.0  # seconds for everything a notebook gets: cells, re-runs, every call
    call_timeout: float = 10.0  # seconds per graded function call
    memory_bytes: int = 4 << 30
    cpu_seconds: int = 600
    nproc: int = 64
    cpus: float = 1.0  # CPU time for the notebook's whole tree (cgroup): a class graded side by side shares fairly
    file_bytes: int = 64 << 20
    max_output: int = 20_000  # characters of stdout/stderr kept per cell


# What the sandbox says once hidden checks have started (Sandbox.seal), instead of any detail.
SEALED = "details are not shown once hidden checks have started"
SEALED_FATAL = ("the notebook's process could not run its cells again after a call ended it; the remaining "
                f"checks were not run ({SEALED})")


class EnvironmentFault(Exception):
    """The grading machine, not the submission, is at fault: nothing may be scored."""


class BudgetExceeded(Exception):
    """The notebook used up its time budget; the remaining checks fail without running."""


class StudentError(Exception):
    """A call into the student's code failed (exception, timeout, crash); the message says how.

    ``from_student``: the text is the student's own exception message (it can echo the
    inputs, so hidden checks show only its type).
    """

    def __init__(self, message: str, from_student: bool = False, kind: str = "", hidden_text: str = ""):
        super().__init__(message)
        self.from_student = from_student
        self.kind = kind  # the exception's type name (chosen by the student when from_student)
        self.hidden_text = hidden_text  # what a hidden check may show: no exit code or signal (student-chosen)


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
    fault: Optional[str] = None  # an environment fault: the sandbox could not be set up at all
    restarts: int = 0  # fresh notebook processes started after a call ended the previous one


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


def _keep_paths(mask: list[str] = ()) -> list[str]:
    """The Python installation the notebook process needs to see (read-only): the prefixes, the
    standard library, site-packages, and every folder on sys.path (``.pth`` files add some),
    except those inside what is masked (this checkout, the course)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[key])
    sites = [p for p in site.getsitepackages() if os.path.isdir(p)]
    paths.update(sites)
    paths.update(_pth_paths(sites))  # not the cwd, the script's folder or PYTHONPATH: those may hold anything
    out = set()
    for p in paths:
        if not p:
            continue
        p = os.path.realpath(p)
        if any(p == m or p.startswith(m.rstrip("/") + "/") for m in mask) and not p.startswith(sys.prefix):
            continue
        if p != "/":
            out.add(p)
    return sorted(out)


def _pth_paths(sites: list[str]) -> list[str]:
    """Folders that ``.pth`` files in site-packages add to sys.path (installed dependencies)."""
    out = []
    for d in sites:
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".pth"))
        except OSError:
            continue
        for n in names:
            try:
                lines = Path(d, n).read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    p = line if os.path.isabs(line) else os.path.join(d, line)
                    if os.path.isdir(p):
                        out.append(p)
    return out


MASKS: set = set()  # more trusted code to hide: every registered lab's (grader.grading.labs adds them)


def _mask_paths(course_root: Optional[Path], extra: tuple[str, ...] = ()) -> list[str]:
    """What must not be seen even where it lies inside the allow-listed filesystem: the grader's
    code, the references and every lab's code (hidden checks, trusted answers) wherever installed, the checkout
    they live in, and the course."""
    here = Path(__file__).resolve().parent.parent  # grader/ (this file is grader/sandbox/client.py)
    mask = [str(here), str(here.parent / "reference"), *MASKS]
    try:
        import reference
        mask.append(str(Path(reference.__file__).resolve().parent))
    except ImportError:
        pass
    try:  # every labs/ folder on the path (installed or the course's), even before any lab was looked up
        import labs
        mask.extend(str(Path(p).resolve()) for p in getattr(labs, "__path__", ()))
    except ImportError:
        pass
    if (here.parent / "pyproject.toml").is_file():
        mask.append(str(here.parent))
    if course_root is not None:
        mask.append(str(Path(course_root).resolve()))
    mask.extend(extra)
    return sorted({m for m in mask if os.path.isdir(m)})


# ---------------------------------------------------------------------------------------
# framing with deadlines and caps
# ---------------------------------------------------------------------------------------

_TMP_PREFIX = "lab-sandbox-"
_swept = False


def _sweep_stale_dirs() -> None:
    """Remove the sandbox folders of graders that were killed before they could clean up
    (``lab-sandbox-<pid>-*`` of this user whose grader pid is gone). Once per process."""
    global _swept
    if _swept:
        return
    _swept = True
    tmp = Path(tempfile.gettempdir())
    try:
        entries = list(tmp.glob(f"{_TMP_PREFIX}*-*"))
    except OSError:
        return
    for d in entries:
        pid = d.name[len(_TMP_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or d.is_symlink() or d.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # the grader that made it still runs
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


# What each phase of a notebook process may send: op -> the largest frame of that op. Any other
# op, a larger frame, or a frame whose op is not its first key, is garbage.
HELLO_FRAMES = {"hello": MAX_CONTROL, "setup-failed": MAX_CONTROL}
CELL_FRAMES = {"cell": MAX_PROGRESS, "ran": MAX_FRAME}
CALL_FRAMES = {"result": MAX_RESULT}
STATUS_FRAMES = {"started": MAX_CONTROL, "failed": MAX_CONTROL, "exit": MAX_CONTROL}
_OP = re.compile(rb'\{"op": "([a-z-]{1,20})"')  # how the worker's json.dumps starts every frame
_OP_PREFIX = 32  # bytes of a body that show its op
_STRUCTURE = b'"[{,:'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)


def shape_ok(body: bytes) -> bool:
    """Whether parsing ``body`` makes at most MAX_ITEMS values, keys and containers (C speed, no parse).

    Brackets, braces, commas and colons counted over the whole body are an upper bound; only
    when that is over the cap are the ones inside strings (an honest output may print many)
    left out."""
    t = body.translate(None, _NOT_STRUCTURE)
    if len(t) - t.count(b'"') <= MAX_ITEMS:
        return True
    if b"\\" in body:  # escapes first, as JSON reads them left to right: then every quote delimits a string
        t = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    if t.count(b'"') > 2 * MAX_ITEMS:  # more strings than items allowed
        return False
    return sum(map(len, t.split(b'"')[::2])) <= MAX_ITEMS  # what lies outside the strings


def parse_frame(body: bytes, op: str) -> Optional[dict]:
    """The frame as a dict whose "op" is ``op``; None for anything else (garbage)."""
    if not body.isascii() or not shape_ok(body):  # the worker writes ASCII (json.dumps' default)
        return None
    try:
        obj = json.loads(body.decode("ascii"))
    except Exception:  # noqa: BLE001 - broken, or nested past the recursion limit
        return None
    return obj if isinstance(obj, dict) and obj.get("op") == op else None  # a repeated "op" key: the last wins


class Channel:
    """Length-prefixed JSON frames on a non-blocking fd: deadlines, linear buffering, and every
    frame's size, op and shape checked before it is parsed. Garbage marks the channel corrupt."""

    def __init__(self, fd: int, allowance: Optional[list[int]] = None):
        self.fd = fd
        os.set_blocking(fd, False)
        self.buf = bytearray()
        self.corrupt = False
        self.eof = False
        self.allowance = allowance  # [bytes of "ran" and "result" frames the notebook may still send]

    def recv(self, deadline: float, allowed: dict[str, int]) -> Optional[dict]:
        """The next frame, if it is one of ``allowed`` (op -> largest size); None on EOF, garbage
        (and from then on) or deadline."""
        largest = max(allowed.values())
        while not self.corrupt:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from("<I", self.buf)
                if n > largest:
                    self.corrupt = True
                    break
                if len(self.buf) >= 4 + min(n, _OP_PREFIX):  # refused as soon as its first bytes show its op
                    m = _OP.match(self.buf, 4, 4 + min(n, _OP_PREFIX))
                    op = m.group(1).decode() if m else ""
                    charged = self.allowance is not None and op in ("ran", "result")
                    if n > allowed.get(op, -1) or (charged and n > self.allowance[0]):
                        self.corrupt = True
                        break
                    if len(self.buf) >= 4 + n:
                        body = bytes(self.buf[4:4 + n])
                        del self.buf[:4 + n]
                        if charged:
                            self.allowance[0] -= n
                        obj = parse_frame(body, op)
                        if obj is None:
                            self.corrupt = True
                            break
                        return obj
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                continue
            self.buf += chunk
        self.buf = bytearray()  # nothing more from this process is read
        return None


def write_until(fd: int, data: memoryview, deadline: float) -> memoryview:
    """Write what can be written before ``deadline``; return what is left (empty: all sent)."""
    while data:
        try:
            data = data[os.write(fd, data):]
            continue
        except BlockingIOError:
            pass
        except OSError:
            return memoryview(b"")  # the reader is gone; its death is reported elsewhere
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select([], [fd], [], min(left, 1.0))
    return data


# ---------------------------------------------------------------------------------------
# the zygote: one clean, warm parent per grading run
# ---------------------------------------------------------------------------------------

class Zygote:
    def __init__(self, imports: tuple[str, ...]):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "OMP_NUM_THREADS": "1", "HOME": os.environ.get("HOME", "/"), "PYTHONDONTWRITEBYTECODE": "1"}
        for key in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "XDG_CACHE_HOME"):
            if key in os.environ:
                env[key] = os.environ[key]
        cfg = {"sock": child.fileno(), "imports": list(imports)}
        self.proc = subprocess.Popen([sys.executable, "-I", str(WORKER_MAIN), json.dumps(cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     pass_fds=(child.fileno(),), start_new_session=True, env=env, cwd="/")
        child.close()
        self.sock = parent
        self.sock.settimeout(180)
        self.lock = threading.Lock()
        try:
            ready = json.loads(self.sock.recv(1 << 20) or b"{}")
        except (OSError, ValueError):
            ready = {}
        if ready.get("op") != "ready":
            self.close()
            raise EnvironmentFault("the grading environment could not start its worker process: "
                                   + self.log_tail())
        if ready.get("missing"):
            self.close()
            raise EnvironmentFault(
                "the grading environment lacks what student notebooks need: " + "; ".join(ready["missing"])
                + f". Install it into the Python that runs the grader ({sys.executable}); nothing was scored.")

    def spawn(self, spec: Spec, fds: list[int]) -> int:
        with self.lock:
            socket.send_fds(self.sock, [json.dumps({"op": "spawn", "spec": spec.to_dict()}).encode()], fds)
            reply = json.loads(self.sock.recv(1 << 16) or b"{}")
        if reply.get("op") != "spawned":
            raise OSError("the zygote did not spawn")
        return int(reply["pid"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-1500:].strip() or "(no output)"

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


_ZYGOTES: dict[tuple[str, ...], Zygote] = {}
_ZLOCK = threading.Lock()


def zygote(imports: Optional[tuple[str, ...]] = None) -> Zygote:
    """The warm parent of this grading run (started on first use, restarted if it died)."""
    imports = tuple(imports if imports is not None else WORKER_IMPORTS)
    with _ZLOCK:
        z = _ZYGOTES.get(imports)
        if z is None or not z.alive():
            z = _ZYGOTES[imports] = Zygote(imports)
        return z


@atexit.register
def _close_zygotes() -> None:
    for z in list(_ZYGOTES.values()):
        z.close()
    _ZYGOTES.clear()


class _Process:
    """One notebook process and its keeper, seen from the grader."""

    def __init__(self, spec: Spec, imports: Optional[tuple[str, ...]], allowance: Optional[list[int]] = None):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        st_r, st_w = os.pipe()
        for fd in (req_w, rep_r, ctl_w, st_r):
            os.set_inheritable(fd, False)
        try:
            fcntl.fcntl(req_w, 1031, 1 << 20)  # F_SETPIPE_SZ: most notebooks' cells fit at once
        except OSError:
            pass
        try:
            try:
                self.keeper = zygote(imports).spawn(spec, [req_r, rep_w, ctl_r, st_w])
            except OSError:  # the warm parent died (killed by the OOM killer, say): start another once
                self.keeper = zygote(imports).spawn(spec, [req_r, rep_w, ctl_r, st_w])
        except OSError as exc:
            for fd in (req_w, rep_r, ctl_w, st_r):
                os.close(fd)
            raise EnvironmentFault(f"the grading run's worker parent could not start a notebook: {exc}") from None
        finally:
            for fd in (req_r, rep_w, ctl_r, st_w):
                os.close(fd)
        self.req_w, self.ctl_w = req_w, ctl_w
        os.set_blocking(req_w, False)
        self.rep = Channel(rep_r, allowance)
        self.status = Channel(st_r)
        self.pending = memoryview(b"")
        self.exit: Optional[dict] = None
        self.started: Optional[dict] = None

    def send(self, obj: Any, deadline: float) -> bool:
        self.pending = write_until(self.req_w, memoryview(bytes(self.pending) + frame(obj)), deadline)
        return not self.pending

    def flush(self, deadline: float) -> bool:
        self.pending = write_until(self.req_w, self.pending, deadline)
        return not self.pending

    def kill(self) -> None:
        try:
            os.write(self.ctl_w, b"k")
        except OSError:
            pass

    def wait_started(self, timeout: float = 60) -> dict:
        if self.started is None:
            self.started = (self.status.recv(time.monotonic() + timeout, STATUS_FRAMES)
                            or {"op": "failed", "why": "no answer"})
        return self.started

    def wait_exit(self, timeout: float = 10) -> dict:
        """How the notebook process ended (the keeper has cleaned up when this returns)."""
        if self.exit is None:
            deadline = time.monotonic() + timeout
            while self.exit is None:
                msg = self.status.recv(deadline, STATUS_FRAMES)
                if msg is None:
                    self.exit = {"op": "exit", "status": None, "oom": False}
                elif msg.get("op") in ("exit", "failed"):
                    self.exit = msg
        return self.exit

    def close(self) -> None:
        self.kill()
        for fd in (self.ctl_w, self.req_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.wait_exit()
        for fd in (self.rep.fd, self.status.fd):
            try:
                os.close(fd)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------
# the sandbox: one notebook, one or more notebook processes over its life
# ---------------------------------------------------------------------------------------

class Sandbox:
    """One student notebook in an isolated process. Use as a context manager.

    ``allow_fallback``: where namespaces are refused, go on at 'process' (said in
    ``run.detail``) instead of reporting an environment fault.
    """

    def __init__(self, cells: list[str], *, limits: Limits = Limits(), level: Optional[str] = None,
                 course_root: Optional[Path] = None, hide: tuple[str, ...] = (), device: str = "cpu",
                 allow_fallback: bool = True, imports: Optional[tuple[str, ...]] = None):
        self.cells = cells
        self.limits = limits
        self.level = level or best_level()
        self.course_root = course_root
        self.hide = hide
        self.device = device
        self.allow_fallback = allow_fallback
        self.imports = imports
        self.run = NotebookRun()
        self.proc: Optional[_Process] = None
        self._next_id = 0
        self._tmp: Optional[str] = None
        self._fell_back = ""
        self._ready = False
        self._skip: dict[str, str] = {}  # code cell index -> why it was skipped (it ended the process)
        self._crashes: dict[str, int] = {}  # function -> how many times a call ended the process
        self.deadline: Optional[float] = None  # the notebook's time budget ends here (set at launch)
        self._allowance = [MAX_PARSED]  # shared by every notebook process of this sandbox
        self.sealed = False  # hidden calls have started: every text from here on is a fixed one (see seal())

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> NotebookRun:
        """Launch the notebook process and wait until the notebook's cells have run."""
        self.launch()
        return self.wait_ready()

    def _spec(self) -> Spec:
        lim = self.limits
        if self._tmp is None:
            _sweep_stale_dirs()
            self._tmp = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")
            os.chmod(self._tmp, 0o755)
            os.mkdir(os.path.join(self._tmp, "root"))
        workdir = "/tmp/work" if self.level == "namespaces" else os.path.join(self._tmp, f"work{self.run.restarts}")
        mask = _mask_paths(self.course_root, self.hide)
        return Spec(
            level="namespaces" if self.level == "namespaces" else "process", device=self.device,
            workdir=workdir, rootdir=os.path.join(self._tmp, "root"), mask=mask, keep=_keep_paths(mask),
            memory_bytes=int(lim.memory_bytes), nproc=int(lim.nproc), cpus=float(lim.cpus),
            cpu_seconds=int(lim.cpu_seconds), file_bytes=int(lim.file_bytes), cell_timeout=float(lim.cell_timeout),
            max_output=int(lim.max_output), host_uid=os.getuid())

    def launch(self) -> None:
        """Start a notebook process and hand it the cells; return at once (see :meth:`wait_ready`)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.limits.notebook_budget
        self.proc = _Process(self._spec(), self.imports, self._allowance)
        self._ready = False
        self.proc.send({"op": "run", "cells": self.cells, "skip": self._skip}, time.monotonic())  # rest: wait_ready

    def wait_ready(self) -> NotebookRun:
        """Wait until the cells have run. A cell that ends the notebook process (exit, crash,
        memory, a loop that ignores its timeout, garbage on the channel) costs only itself:
        it is skipped and the notebook runs again without it."""
        while not (self._ready or self.run.fatal or self.run.fault):
            self._ready = True
            failed = self._wait_once()
            if failed is None:
                break
            cell, why = failed
            if self.budget_left() <= 0:
                why = (f"the notebook's time budget of {self.limits.notebook_budget:g} s was used up while its "
                       f"cells ran ({why})")
                cell = None
            if cell is None or self.run.restarts >= MAX_RESTARTS:
                self.run.fatal = SEALED_FATAL if self.sealed else why
                if not self.run.cells:
                    self.run.cells = [CellResult(error="not run") for _ in self.cells]
                break
            self._skip[str(cell)] = why
            self.proc.close()
            self.run.restarts += 1
            self.launch()
        return self.run

    def _wait_once(self) -> Optional[tuple[Optional[int], str]]:
        """One notebook process's start and cells; (cell index or None, why) if it ended badly."""
        lim = self.limits
        proc = self.proc
        started = proc.wait_started()
        hello = proc.rep.recv(time.monotonic() + 60, HELLO_FRAMES) if started.get("op") == "started" else None
        if not hello or hello.get("op") != "hello":
            why = (started.get("why") if started.get("op") == "failed"
                   else (hello or {}).get("why") if (hello or {}).get("op") == "setup-failed"
                   else self._describe_exit("while setting up the sandbox"))
            proc.close()
            if self.level == "namespaces" and self.allow_fallback and not self._fell_back:
                self._fell_back = f"namespaces refused ({str(why)[:300]}); fell back to 'process'"
                self.level = "process"
                self.launch()
                return self._wait_once()
            self.run.fault = f"the sandbox could not be set up at level '{self.level}': {str(why)[:500]}"
            return None
        self.run.level = hello.get("level") if hello.get("level") in LEVELS else "none"
        self.run.detail = "; ".join(x for x in (self._fell_back, str(hello.get("detail", ""))) if x)
        deadline = min(time.monotonic() + lim.notebook_timeout + 10, self.deadline)
        # The worker says "cell i" before each code cell it runs, in order, skipping the skipped
        # ones, then "ran". Any other index is forged (it would be shown, stored and sent back):
        # garbage, blamed on the cell running when it came.
        expected = [i for i in range(len(self.cells)) if str(i) not in self._skip]
        cell, seen = None, 0
        while True:
            msg = proc.rep.recv(deadline, CELL_FRAMES) if proc.flush(deadline) else None
            if msg is None or msg.get("op") != "cell":
                break
            i = msg.get("i")
            if type(i) is not int or seen >= len(expected) or i != expected[seen] or len(msg) != 2:
                proc.rep.corrupt = True
                msg = None
                break
            cell, seen = i, seen + 1
        # (after hello, student code has run: a "setup-failed" now is forged, i.e. garbage)
        cells = self._ran_cells(msg) if msg is not None and seen == len(expected) else None
        if cells is None:
            if msg is not None:
                proc.rep.corrupt = True
            where = (f"while running code cell {cell + 1}" if cell is not None and not self.sealed
                     else "while running the notebook's cells")
            return cell, self._death_reason(where, lim.notebook_timeout + 10)
        if not self.run.cells:  # the first complete run's outputs are the notebook's; restarts re-create state
            self.run.cells = cells
            self.run.names = [clean(n)[:200] for n in msg["names"]][:codec.MAX_NAMES]
        return None

    def _ran_cells(self, msg: dict) -> Optional[list[CellResult]]:
        """The cells' outputs of a "ran" frame; None if it is not what the worker sends (one dict
        of strings per code cell, names as strings)."""
        lim = self.limits
        cells, names = msg.get("cells"), msg.get("names")
        if (not isinstance(cells, list) or len(cells) != len(self.cells) or not isinstance(names, list)
                or not all(isinstance(n, str) for n in names)):
            return None
        out = []
        for c in cells:
            if not isinstance(c, dict) or not all(isinstance(c.get(k), str) for k in ("stdout", "stderr")) \
                    or not isinstance(c.get("error"), (str, type(None))):
                return None
            out.append(CellResult(clean(c["stdout"][: lim.max_output]), clean(c["stderr"][: lim.max_output]),
                                  None if c["error"] is None else clean(c["error"][:2000])))
        return out

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()
            self.proc = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- calls -------------------------------------------------------------------------
    def seal(self) -> None:
        """Hidden checks start now: from here on every text this sandbox makes (why a call
        failed, why the notebook stopped, which cell ended it) is a fixed text. Whatever happens
        after a hidden call (a crash in a chosen cell, an exit code, a student's message) could
        carry the hidden inputs out through a number or a word the student chose."""
        self.sealed = True

    def call(self, name: str, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """Call the student's ``name(*args, **kwargs)``; return plain data or raise StudentError."""
        return self._request("call", name, args, kwargs, timeout)

    def get(self, name: str) -> Any:
        """Return the value of the student's global ``name`` as plain data."""
        return self._request("get", name, (), {}, None)

    def _fresh_process(self) -> None:
        """The last call ended the notebook process: start another (the cells run again)."""
        if self.run.restarts >= MAX_RESTARTS:
            self.run.fatal = (f"the notebook's process was ended {MAX_RESTARTS + 1} times by its own code; "
                              "the remaining checks were not run")
            raise StudentError(self.run.fatal)
        self.proc.close()
        self.run.restarts += 1
        self.launch()
        self.wait_ready()
        if self.run.fault:
            raise EnvironmentFault(self.run.fault)
        if self.run.fatal:
            raise StudentError(self.run.fatal)

    def budget_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _check_budget(self, spent: bool = False) -> None:
        if spent or self.budget_left() <= 0:
            raise BudgetExceeded(f"the notebook's time budget of {self.limits.notebook_budget:g} s is used up")

    def _failed(self, name: str, since: float) -> None:
        """A call to ``name`` ended the process or used up its timeout: count it against ``name``
        and not against the notebook's budget. After MAX_CRASHES_PER_FUNCTION such calls ``name``
        is not called again, so they cost the grader at most MAX_CRASHES_PER_FUNCTION x (timeout
        + a few seconds) per function the checks call (names the grader chose), and a loop in one
        exercise never takes the time of another."""
        self._crashes[name] = self._crashes.get(name, 0) + 1
        if self.deadline is not None:
            self.deadline += time.monotonic() - since

    def _request(self, op, name, args, kwargs, timeout):
        self._check_budget()
        self.wait_ready()
        if self.run.fault:
            raise EnvironmentFault(self.run.fault)
        if self.run.fatal:
            raise StudentError(self.run.fatal)
        if self._crashes.get(name, 0) >= MAX_CRASHES_PER_FUNCTION:
            raise StudentError(f"{name}() ended the notebook's process or ran out of time "
                               f"{MAX_CRASHES_PER_FUNCTION} times; it was not called again")
        if self.proc.rep.eof or self.proc.rep.corrupt or self.proc.exit is not None:
            self._fresh_process()
        self._check_budget()
        wanted = float(timeout or self.limits.call_timeout)
        timeout = min(wanted, max(0.1, self.budget_left()))
        by_budget = timeout < wanted  # if this call times out, the budget ran out, not the function's time
        self._next_id += 1
        rid = self._next_id
        since = time.monotonic()
        deadline = since + timeout + 3
        payload = {"op": op, "id": rid, "name": name, "args": encode_arg(list(args)),
                   "kwargs": encode_arg(kwargs), "timeout": timeout}
        reply = None
        if self.proc.send(payload, deadline):
            reply = self.proc.rep.recv(deadline, CALL_FRAMES)
            if reply is not None and (reply.get("id") != rid or type(reply.get("ok")) is not bool):
                self.proc.rep.corrupt = True  # an id the grader did not send: forged, i.e. garbage
                reply = None
        if reply is None:
            hung = not (self.proc.rep.eof or self.proc.rep.corrupt)
            why = self._death_reason(f"during the call to {name}()", timeout)  # stops the process
            if hung and by_budget:
                self._check_budget(spent=True)
            self._failed(name, since)
            raise StudentError(why, hidden_text=f"the notebook's process ended or was stopped during the call to "
                                                f"{name}() (details are not shown for hidden checks)")
        if reply.get("ok") is not True:
            code = reply.get("code")
            if code == "timeout":
                if by_budget:
                    self._check_budget(spent=True)
                self._failed(name, since)
            if code == "exception":
                kind = clean(str(reply.get("type", "Exception")))[:100]
                text = SEALED if self.sealed else clean(str(reply.get("error", kind))[:2000])
                raise StudentError(text, from_student=True, kind=kind)
            text = {"timeout": f"TimeoutError: the call ran longer than {timeout:g} s",
                    "memory": "MemoryError: the call ran out of memory",
                    "undefined": f"NameError: {name} is not defined after running the notebook",
                    "unsendable": f"the result could not be sent back (larger than {MAX_RESULT >> 20} MiB, or not "
                                  "plain data)"}.get(code, "the call failed")
            kind = text.split(":")[0] if ":" in text else ""
            raise StudentError(text, kind=kind, hidden_text=text)
        try:
            return decode(reply.get("value"))
        except Exception:  # noqa: BLE001 - anything odd in the reply
            raise StudentError("the returned value could not be read (it is not plain data: numbers, strings, "
                               "lists, dicts or arrays)") from None

    def _describe_exit(self, when: str) -> str:
        ex = self.proc.wait_exit(5) if self.proc else {}
        status = ex.get("status")
        if ex.get("op") == "failed":
            return str(ex.get("why"))
        if ex.get("oom"):
            return (f"the notebook's processes were killed {when}: together they used more than "
                    f"{self.limits.memory_bytes >> 20} MiB of memory")
        if status is None:
            return f"the notebook's process ended {when}"
        code = os.waitstatus_to_exitcode(status)
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        hint = " (memory or CPU limit?)" if code in (-9, -24, -11) else "; did the notebook call exit(), os._exit() or kill itself?"
        return f"the notebook's process ended {when} ({why}){hint}"

    def _death_reason(self, when: str, timeout: float) -> str:
        """The notebook process is gone or gone bad: stop it and say why."""
        proc = self.proc
        if self.sealed:
            proc.kill()
            proc.wait_exit()
            return f"the notebook's process ended or was stopped {when} ({SEALED})"
        if proc.rep.corrupt:
            proc.kill()
            proc.wait_exit()
            return (f"the notebook wrote garbage into the grader's channel {when}; nothing more it returns "
                    "can be trusted. Do not write to file descriptors you did not open.")
        if not proc.rep.eof:
            proc.kill()
            proc.wait_exit()
            return (f"the notebook's process stopped answering {when} (no reply within {timeout:.0f} s); "
                    "it was stopped")
        return self._describe_exit(when)

"""The sandboxed worker: runs a student notebook's cells, then answers function calls.

This file is never imported by the grader. Its text is handed to ``python -I -c`` so that
it needs nothing from the course folder, which it hides from itself before any student
code runs. It must import only the standard library before isolation is in force.

Protocol (length-prefixed JSON frames; requests on fd 3, replies on fd 4):
  worker -> grader  {"op": "hello", "level": ..., "detail": ...}   (before any student code)
  grader -> worker  {"op": "run", "cells": [src, ...]}
  worker -> grader  {"op": "ran", "cells": [{"stdout", "stderr", "error"}], "names": [...]}
  grader -> worker  {"op": "call"|"get", "id": n, "name": str, "args": [...], "kwargs": {...}, "timeout": s}
  worker -> grader  {"op": "result", "id": n, "ok": bool, "value": data | "error": str}
Only plain data crosses: None, bool, int, float, str, lists, dicts with str keys, and arrays
as {"__array__": [dtype, shape, base64 bytes]}. Every call runs in a forked child, so a
crash, exit, loop or memory bomb in one call cannot touch the next.
"""

import base64
import ctypes
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback

REQ_FD, REP_FD = 3, 4  # moved to random high numbers before student code runs (see main)
MAX_FRAME = 256 << 20
NOBODY = 65534
DEVICE = "cpu"  # where argument tensors are placed (device-check grades on "cuda" too)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


# ---------------------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------------------

def send(obj):
    data = json.dumps(obj).encode()
    os.write(REP_FD, struct.pack("<I", len(data)))
    view = memoryview(data)
    while view:
        n = os.write(REP_FD, view)
        view = view[n:]


def recv():
    head = _read_exact(REQ_FD, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = _read_exact(REQ_FD, n)
    return None if body is None else json.loads(body)


def _read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------------------------------
# isolation
# ---------------------------------------------------------------------------------------

def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc, src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    _check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def enter_namespaces(cfg):
    """Unshare mount/pid/net/ipc/uts namespaces; return a description or raise OSError."""
    libc = _libc()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    root = os.geteuid() == 0
    if not root:
        uid, gid = os.geteuid(), os.getegid()
        _check(libc.unshare(flags | CLONE_NEWUSER), "unshare(user+mount+pid+net)")
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    else:
        _check(libc.unshare(flags), "unshare(mount+pid+net)")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    return libc, root


def hide_paths(libc, hide, keep):
    """Cover ``hide`` with empty tmpfs; bind ``keep`` (the Python install) back, read-only."""
    fds = {}
    for k in keep:
        try:
            fds[k] = os.open(k, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            pass
    hidden = []
    for h in sorted(set(hide), key=len):
        if any(h == p or h.startswith(p.rstrip("/") + "/") for p in hidden) or not os.path.isdir(h):
            continue
        _mount(libc, "tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0755")
        hidden.append(h)
    for k, fd in sorted(fds.items(), key=lambda kv: len(kv[0])):
        if not any(k.startswith(h.rstrip("/") + "/") for h in hidden):
            continue  # not under a hidden path: visible as it is
        os.makedirs(k, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
        _mount(libc, None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        os.close(fd)
    return hidden


def _processes_of_this_user():
    """RLIMIT_NPROC counts every process of the uid, not just ours: start from that count."""
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status") as f:
                    n += any(l.startswith("Uid:") and int(l.split()[1]) == uid for l in f)
            except (OSError, ValueError, IndexError):
                pass
    return n


def set_limits(cfg):
    mem = int(cfg["memory_bytes"])
    nproc = int(cfg["nproc"]) + (_processes_of_this_user() if os.getuid() != 0 else 0)
    for res, val in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, int(cfg["cpu_seconds"])),
        (resource.RLIMIT_FSIZE, int(cfg["file_bytes"])),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, nproc),
    ):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass


def isolate(cfg):
    """Apply the strongest isolation available; return (level, detail)."""
    want = cfg["level"]
    detail = []
    if want == "namespaces":
        try:
            libc, root = enter_namespaces(cfg)
        except OSError as exc:
            if cfg.get("require") == "namespaces":
                raise
            detail.append(f"namespaces unavailable ({exc.strerror or exc}); fell back to 'process'")
            want = "process"
        else:
            pid = os.fork()
            if pid:  # outside the new pid namespace: wait, relay the status, nothing else
                os.close(REQ_FD)
                os.close(REP_FD)
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            hidden = hide_paths(libc, cfg["hide"], cfg["keep"])
            os.makedirs(cfg["workdir"], exist_ok=True)
            if root:
                os.chown(cfg["workdir"], NOBODY, NOBODY)
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                detail.append("uid nobody")
            else:
                detail.append("user namespace (no uid change)")
            detail.append("hidden: " + ", ".join(hidden))
            detail.append("no network, own pid namespace")
    if want == "process":
        os.makedirs(cfg["workdir"], exist_ok=True)
    libc = _libc()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.chdir(cfg["workdir"])
    set_limits(cfg)
    detail.append("rlimits: {} MiB memory, {} s CPU, {} processes, {} MiB files".format(
        cfg["memory_bytes"] >> 20, cfg["cpu_seconds"], cfg["nproc"], cfg["file_bytes"] >> 20))
    return want, "; ".join(detail)


# ---------------------------------------------------------------------------------------
# plain data
# ---------------------------------------------------------------------------------------

def encode(value, depth=0):
    """Turn a student's return value into plain data (runs inside the sandbox)."""
    if depth > 20:
        raise TypeError("value is nested more than 20 levels deep")
    t = type(value)
    if value is None or t in (bool, str):
        return value
    if t is int:
        return value if abs(value) < 2**63 else float(value)
    if t is float:
        return _float(value)
    if t in (list, tuple):
        return [encode(v, depth + 1) for v in value]
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"dict keys must be strings, got {type(k).__name__} {k!r}")
            out[k] = encode(v, depth + 1)
        return out
    mod = t.__module__.split(".")[0]
    if mod == "torch" and hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.dtype.is_complex:
            raise TypeError("complex tensors are not accepted")
        if value.dim() == 0:
            return encode(value.item(), depth + 1)
        import torch
        if value.dtype in (torch.bfloat16, torch.float16) or "float8" in str(value.dtype):
            value = value.float()
        value = value.numpy()
        t = type(value)
        mod = "numpy"
    if mod == "numpy":
        import numpy as np
        if isinstance(value, np.generic):
            return encode(value.item(), depth + 1)
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"arrays of dtype {value.dtype} are not accepted")
            a = np.ascontiguousarray(value)
            return {"__array__": [a.dtype.str, list(a.shape), base64.b64encode(a.tobytes()).decode()]}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"a {t.__module__}.{t.__name__} cannot be graded; return numbers, strings, lists, dicts or tensors")


def _float(v):
    if v != v:
        return {"__float__": "nan"}
    if v in (float("inf"), float("-inf")):
        return {"__float__": "inf" if v > 0 else "-inf"}
    return v


def decode(obj):
    """Turn request arguments into Python objects; arrays become torch tensors."""
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            import numpy as np
            import torch
            dt, shape, b64 = obj["__array__"]
            arr = np.frombuffer(base64.b64decode(b64), dtype=np.dtype(dt)).reshape(shape).copy()
            return torch.from_numpy(arr).to(DEVICE)
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: decode(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------------------
# running cells and calls
# ---------------------------------------------------------------------------------------

class _Timeout(BaseException):
    pass


import builtins  # noqa: E402

_BUILTINS = dict(builtins.__dict__)


def restore_builtins():
    """Undo a notebook's patches of builtins, which the worker itself relies on."""
    d = builtins.__dict__
    for k in [k for k in d if k not in _BUILTINS]:
        del d[k]
    d.update(_BUILTINS)


def _alarm(signum, frame):
    raise _Timeout()


def run_cells(cells, cell_timeout, max_output):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="nocolor", xmode="Plain")
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    real_out, real_err = sys.stdout, sys.stderr
    for src in cells:
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        error = None
        signal.alarm(int(cell_timeout))
        try:
            r = shell.run_cell(src, store_history=False, silent=False)
            exc = r.error_before_exec or r.error_in_exec
            if exc is not None:
                error = f"{type(exc).__name__}: {exc}"
        except _Timeout:
            error = f"TimeoutError: the cell ran longer than {cell_timeout} s"
        except BaseException as exc:  # SystemExit, KeyboardInterrupt raised past IPython
            error = f"{type(exc).__name__}: {exc}"
        finally:
            signal.alarm(0)
            sys.stdout, sys.stderr = real_out, real_err
            restore_builtins()
        results.append({"stdout": out.getvalue()[:max_output], "stderr": err.getvalue()[:max_output], "error": error})
    names = sorted(k for k in shell.user_ns if not k.startswith("_"))
    return shell.user_ns, results, names


def call_in_child(ns, req):
    """Run one call in a forked child; return the reply dict. The child cannot hurt the parent."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(max(1, int(req.get("timeout", 10))))
            sys.stdout = sys.stderr = io.StringIO()
            if req["name"] not in ns:
                reply = {"ok": False, "error": f"NameError: {req['name']} is not defined after running the notebook"}
            elif req["op"] == "get":
                reply = {"ok": True, "value": encode(ns[req["name"]])}
            else:
                fn = ns[req["name"]]
                value = fn(*decode(req.get("args", [])), **decode(req.get("kwargs", {})))
                signal.alarm(0)
                restore_builtins()
                signal.alarm(5)  # encoding runs the value's own methods: bound them too
                reply = {"ok": True, "value": encode(value)}
        except _Timeout:
            reply = {"ok": False, "error": f"TimeoutError: the call ran longer than {req.get('timeout', 10)} s"}
        except MemoryError:
            reply = {"ok": False, "error": "MemoryError: the call ran out of memory"}
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
            restore_builtins()
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f" (line {f.lineno} of your cell)" for f in reversed(tb) if f.filename.startswith("<ipython-input") or f.filename.startswith("/tmp/ipykernel") or "ipython-input" in f.filename), "")
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}{where}"}
        try:
            data = json.dumps(reply).encode()
        except Exception as exc:  # noqa: BLE001
            data = json.dumps({"ok": False, "error": f"the result could not be sent: {exc}"}).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(wfd)
    deadline = time.monotonic() + float(req.get("timeout", 10)) + 2.0
    chunks, size = [], 0
    killed = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            killed = "TimeoutError: the call ran longer than {} s and was stopped".format(req.get("timeout", 10))
            break
        r, _, _ = select.select([rfd], [], [], left)
        if not r:
            continue
        chunk = os.read(rfd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_FRAME:
            killed = "the result is larger than 256 MiB"
            break
        chunks.append(chunk)
    if killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if killed:
        return {"ok": False, "error": killed}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            hint = " (memory or CPU limit?)" if sig in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
            return {"ok": False, "error": f"the call's process was killed by {sig}{hint}"}
        return {"ok": False, "error": f"the call ended the process (exit code {os.waitstatus_to_exitcode(status)}) before returning"}


def main():
    global REQ_FD, REP_FD, DEVICE
    cfg = json.loads(sys.argv[1])
    DEVICE = cfg.get("device", "cpu")
    for fd, target in zip(cfg["fds"], (REQ_FD, REP_FD)):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    os.environ.update({"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "HOME": cfg["workdir"],
                       "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
    level, detail = isolate(cfg)
    send({"op": "hello", "level": level, "detail": detail, "pid": os.getpid()})
    # Keep our channel away from the descriptors a student's code writes to by accident or
    # on purpose (0-9, "inherited fds"): a random pair below the NOFILE limit of 256.
    import random
    hi = random.SystemRandom().sample(range(100, 250), 2)
    for old, new in zip((REQ_FD, REP_FD), hi):
        os.dup2(old, new)
        os.close(old)
    REQ_FD, REP_FD = hi
    # Warm imports, so their cost is not charged to the student's first cell's timeout.
    try:
        import torch
        torch.set_num_threads(1)
        import numpy  # noqa: F401
        import matplotlib
        matplotlib.use("Agg")
    except Exception:  # noqa: BLE001
        pass
    req = recv()
    if not req or req.get("op") != "run":
        os._exit(3)
    ns, results, names = run_cells(req["cells"], cfg["cell_timeout"], cfg["max_output"])
    send({"op": "ran", "cells": results, "names": names})
    while True:
        req = recv()
        if req is None or req.get("op") == "bye":
            os._exit(0)
        reply = call_in_child(ns, req)
        reply.update({"op": "result", "id": req.get("id")})
        try:
            send(reply)
        except (TypeError, ValueError):
            send({"op": "result", "id": req.get("id"), "ok": False, "error": "the result could not be sent"})


if __name__ == "__main__":
    main()

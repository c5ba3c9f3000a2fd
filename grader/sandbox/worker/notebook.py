"""The notebook process: runs the cells in IPython, then answers the grader's calls.

It starts isolated (``keeper.isolate``); everything here runs with student code in the same
process. Protocol on its two pipes (frames of ``codec.py``):

  notebook -> grader {"op": "hello", "level", "detail", "pid"} (before student code) / {"op": "setup-failed", "why"}
  grader -> notebook {"op": "run", "cells": [src, ...], "skip": {index: why}}
  notebook -> grader {"op": "cell", "i": n} before each code cell, then
                     {"op": "ran", "cells": [{"stdout", "stderr", "error"}], "names": [...]}
  grader -> notebook {"op": "call"|"get", "id": n, "name": str, "args", "kwargs", "timeout": s} / {"op": "bye"}
  notebook -> grader {"op": "result", "id": n, "ok": bool, "value": data | "code": str, ...}

Calls run here, not in forks, so CUDA works; a crash, exit or timeout ends this process and the
grader starts a fresh one (the cells run again).
"""

import builtins
import io
import json
import os
import signal
import sys
import traceback

from . import codec

DEVICE = "cpu"  # where argument tensors are placed (device-check grades on "cuda" too)
REPLY_FD = [-1]  # the reply channel, wherever it has been moved (the keeper reports set-up failures on it)
HELLO_SENT = [False]  # after hello, student code has run: nothing is an environment fault any more


def main(spec, req_fd, rep_fd, detail):
    """Start IPython, say hello, run the cells, answer calls; never returns."""
    global DEVICE
    DEVICE = spec.device
    shell = _shell()  # before hello: anything that fails up to here is the environment's fault
    codec.send(rep_fd, {"op": "hello", "level": spec.level, "pid": os.getpid(), "detail": "; ".join(detail)
                        + f"; rlimits: {spec.cpu_seconds} s CPU, {spec.file_bytes >> 20} MiB files"})
    HELLO_SENT[0] = True
    serve(spec, req_fd, rep_fd, shell)


class _Timeout(BaseException):
    pass


_BUILTINS = dict(builtins.__dict__)


def restore_builtins():
    """Undo a notebook's patches of builtins, which the worker itself relies on."""
    d = builtins.__dict__
    for k in [k for k in d if k not in _BUILTINS]:
        del d[k]
    d.update(_BUILTINS)


def _alarm(signum, frame):
    raise _Timeout()


def _shell():
    """IPython's shell, headless: GUI and matplotlib magics work as they would with Agg."""
    from IPython.core.interactiveshell import InteractiveShell

    class HeadlessShell(InteractiveShell):
        def enable_gui(self, gui=None):
            return None

        def enable_matplotlib(self, gui=None):
            import matplotlib
            matplotlib.use("Agg")
            return "agg", "agg"

        def enable_pylab(self, gui=None, import_all=True, welcome_message=False):
            self.enable_matplotlib(gui)
            self.run_cell("import numpy\nimport matplotlib\nfrom matplotlib import pylab, mlab, pyplot\n"
                          "np = numpy\nplt = pyplot", store_history=False)

    from traitlets.config import Config
    cfg = Config()
    cfg.HistoryManager.enabled = False
    return HeadlessShell.instance(config=cfg, colors="nocolor", xmode="Plain")


def run_cells(shell, cells, cell_timeout, max_output, skip, progress):
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    real_out, real_err = sys.stdout, sys.stderr
    for i, src in enumerate(cells):
        if str(i) in skip:
            results.append({"stdout": "", "stderr": "", "error": "SkippedCell: " + str(skip[str(i)])[:1000]
                            + "; the cell was skipped and the notebook run again without it"})
            continue
        progress(i)
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        error = None
        signal.alarm(max(1, int(cell_timeout)))
        try:
            r = shell.run_cell(src, store_history=False, silent=False)
            exc = r.error_before_exec or r.error_in_exec
            if exc is not None:
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, SyntaxError) and exc.lineno:
                    error += f" (line {exc.lineno})"
        except _Timeout:
            error = f"TimeoutError: the cell ran longer than {cell_timeout:g} s"
        except BaseException as exc:  # SystemExit, KeyboardInterrupt raised past IPython
            error = f"{type(exc).__name__}: {exc}"
        finally:
            signal.alarm(0)
            sys.stdout, sys.stderr = real_out, real_err
            restore_builtins()
        results.append({"stdout": out.getvalue()[:max_output], "stderr": err.getvalue()[:max_output],
                        "error": None if error is None else error[:2000]})
    names = sorted(k for k in shell.user_ns if isinstance(k, str) and not k.startswith("_"))
    return shell.user_ns, results, names


def _where(exc):
    tb = traceback.extract_tb(exc.__traceback__)
    return next((f" (line {f.lineno} of your cell)" for f in reversed(tb) if "ipython-input" in f.filename
                 or f.filename.startswith("/tmp/ipykernel") or f.filename.startswith("<ipython-input")), "")


def call(ns, req):
    """Run one call here, in the notebook process, with a timeout; return the reply dict.

    Failures the worker itself describes carry a ``code`` (the grader writes their text); a
    student's exception carries its type's name and the student's own message."""
    timeout = float(req.get("timeout", 10))
    signal.signal(signal.SIGALRM, _alarm)
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    try:
        signal.setitimer(signal.ITIMER_REAL, max(0.05, timeout))
        if req["name"] not in ns:
            return {"ok": False, "code": "undefined"}
        if req["op"] == "get":
            return _encoded(ns[req["name"]])
        args, kwargs = codec.to_torch(req.get("args", []), DEVICE), codec.to_torch(req.get("kwargs", {}), DEVICE)
        value = ns[req["name"]](*args, **kwargs)
        signal.setitimer(signal.ITIMER_REAL, 0)
        restore_builtins()
        signal.setitimer(signal.ITIMER_REAL, 5)  # encoding runs the value's own methods: bound them too
        return _encoded(value)
    except _Timeout:
        return {"ok": False, "code": "timeout"}
    except MemoryError:
        return {"ok": False, "code": "memory"}
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        restore_builtins()
        try:
            kind = type(exc).__name__
            text = f"{kind}: {str(exc)[:500]}{_where(exc)}"
        except BaseException:  # noqa: BLE001 - a __str__ that raises
            kind, text = "Exception", "an exception whose message could not be read"
        return {"ok": False, "code": "exception", "type": str(kind)[:100], "error": text}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = real_out, real_err
        restore_builtins()


def _encoded(value):
    """The reply for a returned value. A value that cannot be encoded (a meta-device tensor, an
    object whose methods raise) is "unsendable", never the exception its methods raised (a
    NotImplementedError from torch would read as an untouched stub)."""
    try:
        return {"ok": True, "value": codec.encode(value)}
    except (_Timeout, MemoryError, TypeError, ValueError):
        raise  # encode's own TypeErrors say what is not plain data: reported as before
    except BaseException:  # noqa: BLE001 - whatever else the value's own methods raise
        return {"ok": False, "code": "unsendable"}


def serve(spec, req_fd, rep_fd, shell):
    req = codec.recv(req_fd)
    if not req or req.get("op") != "run":
        os._exit(3)
    ns, results, names = run_cells(shell, req["cells"], spec.cell_timeout, spec.max_output,
                                   req.get("skip") or {}, lambda i: codec.send(rep_fd, {"op": "cell", "i": i}))
    codec.send(rep_fd, codec.ran_frame(results, names))
    while True:
        req = codec.recv(req_fd)
        if req is None or req.get("op") == "bye":
            os._exit(0)
        reply = {"op": "result", "id": req.get("id"), **call(ns, req)}  # "op" first: the grader reads it first
        try:
            data = json.dumps(reply)
        except (TypeError, ValueError):
            data = None
        if data is None or len(data) > codec.MAX_RESULT:
            reply = {"op": "result", "id": req.get("id"), "ok": False, "code": "unsendable"}
        codec.send(rep_fd, reply)

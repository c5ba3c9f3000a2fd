"""The zygote: one clean, warm parent per grading run, started as ``python -I <this file> CONFIG``.

Run as a file, it loads its own folder as the package ``sandbox_worker`` (nothing of the grader
is on ``sys.path`` under ``-I``: not the checkout, not ``grader/``), imports every module of it
and then the warm imports (torch, numpy, IPython, matplotlib; CUDA is never touched here). Each
keeper and notebook process is a fork of it: the worker's code is already in their memory, so the
notebook process, which cannot read ``grader/`` (it is masked), needs nothing from disk.

  grader -> zygote   {"op": "spawn", "spec": Spec.to_dict()} + fds [req_r, rep_w, ctl_r, st_w]  (SCM_RIGHTS)
  zygote -> grader   {"op": "ready", "missing": [...], "pid": n} once; {"op": "spawned", "pid": keeper} per spawn

CONFIG is JSON: {"sock": the socket's fd, "imports": [modules to import warm]}.
"""

import gc
import importlib.util
import json
import os
import signal
import socket
import sys

PACKAGE = "sandbox_worker"


def load_package():
    """This folder as the package ``sandbox_worker``, with every module imported now (a fork of
    the zygote never imports one of them from disk)."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(here, "__init__.py"),
                                                  submodule_search_locations=[here])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = pkg
    spec.loader.exec_module(pkg)
    for name in sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and f not in ("__init__.py", "main.py")):
        importlib.import_module(f"{PACKAGE}.{name}")
    return pkg


def zygote(cfg, keeper_main):
    sock = socket.socket(fileno=cfg["sock"])
    missing = []
    for mod in cfg["imports"]:
        try:
            __import__(mod)
        except BaseException as exc:  # noqa: BLE001 - report any failure, by name
            missing.append(f"{mod} ({type(exc).__name__}: {exc})")
    try:
        import torch
        torch.set_num_threads(1)
        import matplotlib
        matplotlib.use("Agg")
    except BaseException:  # noqa: BLE001 - already reported as missing
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    # The warm imports are never garbage: keep them out of the collector, so a notebook's full
    # collections do not walk torch's objects again (and their pages stay shared after fork).
    gc.collect()
    gc.freeze()
    sock.send(json.dumps({"op": "ready", "missing": missing, "pid": os.getpid()}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 8)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)  # the grader went away
        msg = json.loads(data)
        if msg.get("op") != "spawn" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                keeper_main(msg.get("spec"), fds)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"op": "spawned", "pid": pid}).encode())


if __name__ == "__main__":
    load_package()
    from sandbox_worker import keeper

    zygote(json.loads(sys.argv[1]), keeper.main)

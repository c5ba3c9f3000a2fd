"""Finding and killing processes through /proc (a uid's, a cgroup's, a keeper's orphans)."""

import os
import signal
import time


def pids_where(pred):
    """Pids whose /proc/<pid>/status fields satisfy ``pred``."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except (OSError, ValueError):
                continue
            if pred(fields):
                out.append(int(name))
    return out


def of_uid(uid):
    return pids_where(lambda f: int(f.get("Uid", "-1 ").split()[0]) == uid)


def kill_all(find, rounds=200):
    """SIGKILL what ``find()`` returns until it returns nothing (a forking process included)."""
    for _ in range(rounds):
        pids = [p for p in find() if p != os.getpid()]
        if not pids:
            return True
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        reap()
        time.sleep(0.005)
    return False


def reap():
    """Collect every child that has ended (without waiting for the others)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

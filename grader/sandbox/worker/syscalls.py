"""System call numbers by architecture, for the names the worker uses (seccomp, pivot_root).

From the kernel's tables: arch/x86/entry/syscalls/syscall_64.tbl (x86_64) and
include/uapi/asm-generic/unistd.h (aarch64; calls added since 5.x share one number everywhere).
"""

import os

NUMBERS = {
    "x86_64": {
        "ptrace": 101, "pivot_root": 155, "chroot": 161, "mount": 165, "umount2": 166, "init_module": 175,
        "delete_module": 176, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "setns": 308, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
        "clone": 56,
    },
    "aarch64": {
        "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "unshare": 97, "kexec_load": 104,
        "init_module": 105, "delete_module": 106, "ptrace": 117, "add_key": 217, "request_key": 218,
        "keyctl": 219, "clone": 220, "perf_event_open": 241, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "setns": 268, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
        "kexec_file_load": 294,
    },
}
COMMON = {  # the same number on every architecture (asm-generic, 5.1 and later)
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "mount_setattr": 442,
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # seccomp_data.arch


def machine():
    return os.uname().machine


def supported(arch=None):
    return (arch or machine()) in NUMBERS


def number(name, arch=None):
    """The number of system call ``name`` on ``arch`` (this machine's by default)."""
    arch = arch or machine()
    if arch not in NUMBERS:
        raise OSError(f"no system call table for {arch}")
    if name in COMMON:
        return COMMON[name]
    return NUMBERS[arch][name]

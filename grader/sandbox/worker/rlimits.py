"""Per-process limits (rlimits) of the notebook process: always CPU time, file size, open files,
core dumps and processes; memory too where no cgroup limits the whole tree."""

import os
import resource

from . import procs

NOFILE = 256  # the channel's descriptors are moved just below this (notebook.py)


def apply(spec, cgroup_limits):
    nproc = spec.nproc
    if os.getuid() == spec.host_uid:
        # RLIMIT_NPROC counts every process of the uid, not just ours: no private uid, so the
        # TA's own processes count too
        nproc += len(procs.of_uid(os.getuid()))
    limits = [
        (resource.RLIMIT_CPU, spec.cpu_seconds),
        (resource.RLIMIT_FSIZE, spec.file_bytes),
        (resource.RLIMIT_NOFILE, NOFILE),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, nproc),
    ]
    if not cgroup_limits:
        # Per process only (stated in the report). RLIMIT_DATA, not RLIMIT_AS: CUDA reserves
        # address space far beyond any memory limit, and would fail to initialise under AS.
        limits.append((resource.RLIMIT_DATA, spec.memory_bytes))
    for res, val in limits:
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            pass

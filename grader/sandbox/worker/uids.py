"""Private uids for sandboxes (the grader runs as root): one slot of a reserved range per keeper,
held by a lock file for as long as the keeper lives."""

import fcntl
import os

from . import procs

UID_BASE, UID_SLOTS = 1_500_000_000, 4096
UID_LOCKS = "/run/lab-grader-uids"


def allocate():
    """(uid, lock fd): the first slot whose lock file we can hold; closing the fd frees it."""
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
        kill(uid)  # anything a crashed earlier run left behind
        return uid, fd
    raise OSError("no free sandbox uid")


def kill(uid):
    """SIGKILL every process of ``uid``."""
    return procs.kill_all(lambda: procs.of_uid(uid))

"""The spawn spec: what the grader asks of one notebook process, as a typed object.

Both sides import this module: the grader builds a :class:`Spec` and sends ``to_dict()`` (JSON by
field name) in the zygote's ``spawn`` message; the keeper rebuilds it with :meth:`Spec.from_dict`,
which refuses an unknown field, a missing one or a value of the wrong type. Standard library only.
"""

from dataclasses import dataclass, fields
from typing import get_origin

LEVELS = ("process", "namespaces")  # what a notebook process can be asked for ("none" is never spawned)
DEVICES = ("cpu", "cuda")


class SpecError(ValueError):
    """A spawn spec that is not what this worker understands."""


@dataclass(frozen=True)
class Spec:
    level: str  # "namespaces": own mount, pid, network, IPC and UTS namespaces; "process": uid and limits only
    device: str  # where argument tensors are placed ("cuda" also binds the NVIDIA device nodes)
    workdir: str  # the notebook's working folder (its HOME and TMPDIR)
    rootdir: str  # an empty folder for the new root ('namespaces')
    mask: list[str]  # folders hidden with an empty read-only mount (the grader, references, labs, course)
    keep: list[str]  # the Python installation, bound read-only into the new root
    memory_bytes: int  # the whole tree's memory (cgroup), else each process's data (rlimit)
    nproc: int  # processes of the tree (cgroup), else of the uid (rlimit)
    cpus: float  # CPU time for the tree (cgroup cpu.max), where the cpu controller can be written
    cpu_seconds: int  # RLIMIT_CPU
    file_bytes: int  # RLIMIT_FSIZE
    cell_timeout: float  # seconds per cell
    max_output: int  # characters of stdout/stderr kept per cell
    host_uid: int  # the grader's uid: without a private uid, RLIMIT_NPROC counts its processes too

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            kind = get_origin(f.type) or f.type
            if kind is float and type(value) is int:
                object.__setattr__(self, f.name, float(value))
            elif type(value) is not kind:
                raise SpecError(f"spawn spec field {f.name!r}: expected {f.type}, got {type(value).__name__}")
            elif kind is list and not all(type(v) is str for v in value):
                raise SpecError(f"spawn spec field {f.name!r}: expected a list of strings")
        if self.level not in LEVELS:
            raise SpecError(f"spawn spec field 'level': {self.level!r} is not one of {LEVELS}")
        if self.device not in DEVICES:
            raise SpecError(f"spawn spec field 'device': {self.device!r} is not one of {DEVICES}")

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise SpecError(f"spawn spec: expected an object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise SpecError("spawn spec: " + "; ".join(
                x for x in (unknown and f"unknown fields {unknown}", missing and f"missing fields {missing}") if x))
        return cls(**data)

"""Framing and plain data: the one definition both sides of the sandbox use.

The grader imports this module as ``grader.sandbox.worker.codec``; the worker loads the same file
(``main.py``). It imports only the standard library (numpy and torch where an array is met), so
the frame limits, the framing and the encoding of values are written once.

A frame is a 4-byte little-endian length and an ASCII JSON object whose first key is ``"op"``.
Values cross as plain data: None, bools, numbers, strings, lists, dicts with string keys; arrays
as ``{"__array__": [dtype, shape, base64 bytes]}``; non-finite floats as ``{"__float__": ...}``.
"""

import base64
import json
import os
import struct
import sys

MAX_REQUEST = 64 << 20  # what the grader sends (the cells' sources, a call's arguments)
MAX_RAN = 8 << 20  # the "ran" frame: the cells' outputs are shortened to fit (the grader refuses larger)
MAX_RESULT = 8 << 20  # a call's reply: the checks need a few numbers, dicts and small arrays
MAX_CONTROL = 64 << 10  # "hello", "setup-failed" and the keeper's status frames
MAX_PROGRESS = 4 << 10  # "cell": which code cell runs now (an index; a real one is ~25 bytes)
MAX_NAMES = 10_000  # global names reported after the cells ran
MAX_DEPTH = 20  # nesting of a returned value


# ---------------------------------------------------------------------------------------
# framing (the worker writes and reads blocking; the grader's reader adds deadlines and caps)
# ---------------------------------------------------------------------------------------

def frame(obj):
    """``obj`` as one frame's bytes."""
    data = json.dumps(obj).encode()
    return struct.pack("<I", len(data)) + data


def send(fd, obj):
    """Write one frame to ``fd`` (blocking)."""
    view = memoryview(frame(obj))
    while view:
        view = view[os.write(fd, view):]


def recv(fd, limit=MAX_REQUEST):
    """Read one frame from ``fd`` (blocking); None on EOF or a frame over ``limit``."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    if n > limit:
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


# ---------------------------------------------------------------------------------------
# plain data
# ---------------------------------------------------------------------------------------

def _array(a):
    return {"__array__": [a.dtype.str, list(a.shape), base64.b64encode(a.tobytes()).decode()]}


def _float(v):
    if v != v:
        return {"__float__": "nan"}
    if v in (float("inf"), float("-inf")):
        return {"__float__": "inf" if v > 0 else "-inf"}
    return v


def encode(value, depth=0):
    """A student's return value as plain data (runs inside the sandbox: only exact types are
    trusted, a subclass's methods are never called)."""
    if depth > MAX_DEPTH:
        raise TypeError(f"value is nested more than {MAX_DEPTH} levels deep")
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
            return _array(np.ascontiguousarray(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"a {t.__module__}.{t.__name__} cannot be graded; return numbers, strings, lists, dicts or tensors")


def to_torch(obj, device="cpu"):
    """A request's arguments as Python objects for the student's function; arrays become torch
    tensors on ``device`` (runs inside the sandbox, on what the grader sent)."""
    if isinstance(obj, list):
        return [to_torch(v, device) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            import numpy as np
            import torch
            dt, shape, b64 = obj["__array__"]
            arr = np.frombuffer(base64.b64decode(b64), dtype=np.dtype(dt)).reshape(shape).copy()
            return torch.from_numpy(arr).to(device)
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: to_torch(v, device) for k, v in obj.items()}
    return obj


def encode_arg(value):
    """A grader-side argument as plain data (torch tensors and numpy arrays as arrays)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    np = sys.modules.get("numpy")  # (an ndarray means numpy is imported)
    if np is not None and isinstance(value, np.ndarray):
        return _array(np.ascontiguousarray(value))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return _float(value)
    if isinstance(value, (list, tuple)):
        return [encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_arg(v) for k, v in value.items()}
    return value


def decode(obj):
    """Plain data from the sandbox as Python values, arrays as numpy arrays (runs in the grader,
    on untrusted data). Refuses anything else with ValueError."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            import numpy as np
            dt, shape, b64 = obj["__array__"]
            dtype = np.dtype(dt)
            if dtype.kind not in "biuf" or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise ValueError("malformed array")
            arr = np.frombuffer(base64.b64decode(b64), dtype=dtype)
            return arr.reshape(shape).copy()
        if set(obj) == {"__float__"}:
            if obj["__float__"] not in ("nan", "inf", "-inf"):
                raise ValueError("malformed float")
            return float(obj["__float__"])
        return {str(k): decode(v) for k, v in obj.items()}
    raise ValueError(f"unexpected {type(obj).__name__}")

"""What one frame from a notebook process can cost the grader: the largest frames it accepts.

Every frame a notebook sends is untrusted (student code can write into the channel), so the
reader checks its size, op and shape before parsing it (``grader.sandbox.client.parse_frame``). This
builds, for each shape that is expensive to parse, the largest frame that passes those checks
and reports the time ``parse_frame`` takes (best of 3, the GIL held throughout) and the peak
memory it allocates (tracemalloc: json's objects, numpy's buffers), beside the reader's own
buffer. Each case runs in a fresh process.

    python benchmarks/bench_channel.py
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.sandbox import client as S  # noqa: E402

HEAD = b'{"op": "ran", "x": '


def _fill(body: bytes, content: bytes = b"a") -> bytes:
    """Close ``body`` (an open list) with one string that brings the frame to MAX_FRAME bytes."""
    room = S.MAX_FRAME - len(body) - 5
    return body + b',"' + content * (room // len(content)) + b"a" * (room % len(content)) + b'"]}'


def case(name: str) -> bytes:
    n = S.MAX_FRAME - len(HEAD) - 3
    items = S.MAX_ITEMS // 2 - 20  # each list entry is counted twice (itself and its comma)
    if name == "one string":
        return HEAD + b'"' + b"a" * n + b'"}'
    if name == "one string, astral escape":  # one 4-byte character widens the whole string
        return HEAD + b'"\\ud83d\\ude00' + b"a" * (n - 12) + b'"}'
    if name == "\\u escapes":
        return HEAD + b'"' + b"\\u4e00" * (n // 6) + b'"}'
    if name == "empty lists":
        return _fill(HEAD + b"[" + b",".join([b"[]"] * items))
    if name == "floats":
        return _fill(HEAD + b"[" + b",".join([b"1e5"] * items))
    if name == "short strings":
        return _fill(HEAD + b"[" + b",".join(b'"%05x"' % i for i in range(items)))
    if name == "brackets inside a string":  # an honest output of brackets: counted outside strings only
        return HEAD + b'"' + b"[{,:" * (n // 4) + b'"}'
    if name == "strings of brackets":
        return _fill(HEAD + b"[" + b",".join([b'"[{"'] * items), b"[")
    raise KeyError(name)


CASES = ["one string", "one string, astral escape", "\\u escapes", "empty lists", "floats", "short strings",
         "brackets inside a string", "strings of brackets"]


def measure(name: str) -> str:
    body = case(name)
    assert len(body) <= S.MAX_FRAME, len(body)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        obj = S.parse_frame(body, "ran")
        times.append(time.perf_counter() - t)
        del obj
    tracemalloc.start()
    obj = S.parse_frame(body, "ran")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (f"{name:28s} {'accepted' if obj is not None else 'REFUSED':9s} {min(times) * 1000:6.0f} ms  "
            f"{peak / 2 ** 20:5.0f} MiB")


def main() -> None:
    if len(sys.argv) > 1:
        print(measure(sys.argv[1]))
        return
    print(f"largest accepted frames: {S.MAX_FRAME >> 20} MiB, {S.MAX_ITEMS} items; "
          f"stated bound per sandbox {S.PARSE_MEMORY_BOUND >> 20} MiB (beside the {S.MAX_FRAME >> 20} MiB buffer)")
    print(f"{'case':28s} {'':9s} {'parse':>9s}  {'peak':>9s}")
    for name in CASES:
        r = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr.strip()[-500:])
    # the frame that used to be parsed unchecked: 8 MiB of empty lists (json.loads alone)
    import json
    body = HEAD + b"[" + b",".join([b"[]"] * ((S.MAX_FRAME - 40) // 3)) + b"]}"
    tracemalloc.start()
    t = time.perf_counter()
    json.loads(body)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{'unchecked: 8 MiB of [] ':28s} {'(before)':9s} {dt * 1000:6.0f} ms  {peak / 2 ** 20:5.0f} MiB")


if __name__ == "__main__":
    main()

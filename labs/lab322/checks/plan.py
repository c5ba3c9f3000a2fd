"""Exercise ``plan``: bytes with their scales, and a mixed-precision plan that meets a cosine floor.

``matrix_bytes(scheme, shape)``: elements ``ceil(out * in * bits / 8)`` plus every scale, exactly
:func:`labs.lab322.answers.matrix_bytes` (public: the three MiniLM shapes in every scheme; hidden: a fixed
non-square shape in every scheme first, then shapes drawn from the seed).

``PLAN``: ``{layer: scheme}`` over the 36 encoder matrices (checkpoint names, or the short names
``0.q`` ... ``5.ffn_down``). The grader measures it with the reference forward pass and counts its bytes
with :func:`~labs.lab322.answers.plan_bytes`, never with the student's code:

* public: it meets :data:`~labs.lab322.answers.COSINE_FLOOR` on the 40 public sentences and costs less
  than the cheapest single-scheme plan that meets the floor (:data:`UNIFORM_BEST`, FP8 E4M3 everywhere:
  a test checks every cheaper single scheme misses the floor on both sentence sets);
* hidden (partial credit): the same on the 20 hidden sentences;
* hidden (full credit): that, and at most :data:`BYTES_TOLERANCE` above the reference plan's bytes.

A single-scheme plan (a constant answer) earns nothing: it never costs less than :data:`UNIFORM_BEST`
while meeting the floor.
"""

from __future__ import annotations

import functools

from reference.weights import short_name

from . import BY_SHORT, LAYERS, Fail, as_int, check, environment, exercise, hidden_sentences, public_sentences, shown
from .. import answers as A

exercise("plan", "Exercise 2: bytes with scales, and a mixed-precision plan", order=2)

BYTES_TOLERANCE = 0.05  # the notebook states: full marks at most 5% above the reference plan's bytes
UNIFORM_BEST = "fp8_e4m3fn"  # the cheapest single scheme that meets the floor (tests/test_lab322_notebook.py)
PUBLIC_SHAPES = ((384, 384), (1536, 384), (384, 1536))
FIXED_HIDDEN_SHAPE = (96, 640)  # out != in, neither a MiniLM shape: rows and columns cannot be swapped unseen


# ---- matrix_bytes ----------------------------------------------------------------------------

def _bytes_hint(got: int, scheme: str, shape: tuple[int, int]) -> str:
    s = A.get_scheme(scheme)
    fmt_bits = 4 if scheme in ("int4", "int4_g128", "nvfp4", "mxfp4") else 8
    n = shape[0] * shape[1]
    elements = -(-n * fmt_bits // 8)
    want = A.matrix_bytes(scheme, shape)
    if got == elements and want != elements:
        return " Your count leaves out the scales: add the bytes of every scale the scheme stores."
    if fmt_bits == 4 and got == want + n - elements:
        return " Your count gives a 4-bit element a whole byte: two 4-bit elements pack into one byte."
    if s.granularity in ("tensor", "channel", "group") and got == elements + 2 * s.scales(shape):
        return " Your scales are 2 bytes (FP16): the lab's per-tensor, per-channel and per-group scales are FP32, 4 bytes."
    if scheme == "nvfp4" and got == want - 4:
        return " Your NVFP4 count leaves out its FP32 tensor scale (4 bytes), stored besides the E4M3 block scales."
    if scheme == "int8_per_channel" and got == elements + 4 * shape[1]:
        return " Your count has one scale per column: a per-channel scale is per output row, shape[0] of them."
    if scheme in ("nvfp4", "mxfp4") and got in (elements + 4 * s.scales(shape), elements + 4 * s.scales(shape) + 4):
        return " Your block scales are 4 bytes: NVFP4's are E4M3 and MXFP4's E8M0, 1 byte each."
    return ""


def _compare_bytes(student, cases, what: str, public: bool) -> None:
    for scheme, shape in cases:
        got = as_int(student.call("matrix_bytes", scheme, tuple(shape)), f"matrix_bytes on {what}")
        want = A.matrix_bytes(scheme, shape)
        if got != want:
            detail = (f" matrix_bytes({scheme!r}, {tuple(shape)}) gave {got}, expected {want}." if public
                      else f" The first wrong one is a {A.SCHEMES[scheme].label} matrix.")
            raise Fail(f"matrix_bytes on {what}: wrong byte count.{detail}{_bytes_hint(got, scheme, shape)}")


@check("plan", "bytes_public", 1, "matrix_bytes in every scheme for MiniLM's shapes (384, 384), (1536, 384), (384, 1536)",
       hidden=False)
def bytes_public(student, rng):
    _compare_bytes(student, [(s, shape) for shape in PUBLIC_SHAPES for s in A.PLAN_SCHEMES],
                   "MiniLM's shapes in every scheme", public=True)


@check("plan", "bytes_hidden", 1, "matrix_bytes in every scheme for other shapes")
def bytes_hidden(student, rng):
    _compare_bytes(student, [(s, FIXED_HIDDEN_SHAPE) for s in A.PLAN_SCHEMES],
                   "a non-square shape in every scheme", public=False)
    shapes = [(int(rng.integers(1, 3000)), 128 * int(rng.integers(1, 33))) for _ in range(3)]
    _compare_bytes(student, [(s, shape) for shape in shapes for s in A.PLAN_SCHEMES],
                   "other shapes in every scheme", public=False)


# ---- PLAN ------------------------------------------------------------------------------------

def _plan(student) -> dict[str, str]:
    """The student's PLAN, keyed by checkpoint name; Fail when it is not a plan of the 36 matrices."""
    plan = student.get("PLAN")
    if not isinstance(plan, dict):
        kind = "nothing (None)" if plan is None else f"a {type(plan).__name__}"
        raise Fail(f"PLAN must be a dict {{layer: scheme}} over the 36 encoder matrices, got {kind}.")
    out = {}
    for key, scheme in plan.items():
        name = BY_SHORT.get(key, key) if isinstance(key, str) else key
        if name not in LAYERS:
            raise Fail(f"PLAN has the key {shown(key)}, which is not one of the 36 encoder matrices: use the names of "
                       "LAYERS (or their short names, 0.q ... 5.ffn_down).")
        if name in out:
            raise Fail(f"PLAN names {short_name(name)} twice (once by its short name): name each matrix once.")
        if not isinstance(scheme, str) or scheme not in A.PLAN_SCHEMES:
            raise Fail(f"PLAN gives {short_name(name)} the scheme {shown(scheme)}; use one of "
                       f"{', '.join(A.PLAN_SCHEMES)}.")
        out[name] = scheme
    missing = [short_name(n) for n in LAYERS if n not in out]
    if missing:
        raise Fail(f"PLAN leaves out {len(missing)} of the 36 matrices ({', '.join(missing[:4])}"
                   f"{' ...' if len(missing) > 4 else ''}): give every one a scheme.")
    return out


@functools.lru_cache(maxsize=32)
def _evaluate(items: tuple, which: str) -> float:
    texts = public_sentences() if which == "public" else hidden_sentences()
    return A.evaluate(dict(items), texts)["cosine"]


@environment
def plan_cosine(plan: dict[str, str], which: str) -> float:
    """The plan's mean cosine vs FP32 on the public (40) or hidden (20) sentences, by the reference."""
    return _evaluate(tuple(sorted(plan.items())), which)


@environment
def uniform_best_bytes() -> int:
    return A.plan_bytes(A.uniform_plan(UNIFORM_BEST))


@environment
def reference_bytes() -> int:
    return A.plan_bytes(A.reference_plan())


def _mixed(plan: dict[str, str], where: str, public: bool) -> int:
    """The plan's bytes; Fail unless it beats the cheapest single-scheme plan that meets the floor."""
    nbytes = environment(A.plan_bytes)(plan)
    if nbytes >= uniform_best_bytes():
        detail = f" Your plan: {nbytes} bytes; FP8 E4M3 everywhere: {uniform_best_bytes()} bytes." if public else ""
        raise Fail(f"PLAN {where}: it costs no less than FP8 E4M3 everywhere, the cheapest single scheme that meets "
                   f"the floor: a mixed plan must spend fewer bytes (4-bit schemes where the drops are small).{detail}")
    return nbytes


@check("plan", "plan_public", 1, "PLAN meets cosine 0.99 on the 40 sentences and beats every single-scheme plan",
       hidden=False)
def plan_public(student, rng):
    plan = _plan(student)
    nbytes = _mixed(plan, "on the 40 sentences", public=True)
    cos = plan_cosine(plan, "public")
    if cos < A.COSINE_FLOOR:
        raise Fail(f"PLAN on the 40 sentences: mean cosine {cos:.4f}, below the floor {A.COSINE_FLOOR} (plan: {nbytes} "
                   "bytes). Move the layers with the largest drops (Exercise 1) to a more precise scheme.")


def _hidden_floor(student) -> tuple[dict[str, str], int]:
    plan = _plan(student)
    nbytes = _mixed(plan, "on the hidden sentences", public=False)
    if plan_cosine(plan, "hidden") < A.COSINE_FLOOR:
        raise Fail(f"PLAN on the hidden sentences: the mean cosine is below the floor {A.COSINE_FLOOR}. A plan tuned to "
                   "land just above the floor on the notebook's sentences can miss it on others: leave a margin.")
    return plan, nbytes


@check("plan", "plan_floor_hidden", 1, "PLAN meets cosine 0.99 on the hidden sentences and beats every single-scheme plan")
def plan_floor_hidden(student, rng):
    _hidden_floor(student)


@check("plan", "plan_bytes_hidden", 2,
       "PLAN meets cosine 0.99 on the hidden sentences within 5% of the reference plan's bytes")
def plan_bytes_hidden(student, rng):
    plan, nbytes = _hidden_floor(student)
    if nbytes > reference_bytes() * (1 + BYTES_TOLERANCE):
        raise Fail(f"PLAN meets the floor but costs more than {BYTES_TOLERANCE:.0%} above the reference plan's bytes: "
                   "look for layers whose drops allow a cheaper scheme (the drops of single layers add up).")


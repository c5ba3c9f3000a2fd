"""Lab 3.2.2's checks: its own registry, and one module per exercise (sensitivity, plan, activations)
that declares the exercise and its checks with ``exercise(...)`` and ``@check(...)``.

Every expected value comes from :mod:`labs.lab322.answers` (the reference forward pass
:mod:`reference.minilm` and :func:`reference.fake_quantize`); the helpers below cache what several
checks, or several notebooks of one grading run, ask for (the hidden inputs depend on the course's seed
and the check, never on the student). Without the MiniLM weights (or ``tokenizers``) on the grading
machine a check raises :class:`~grader.sandbox.EnvironmentFault`: nothing is scored, the TA sees the
install line.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any, Sequence

import numpy as np
import torch

from grader.grading.checks import *  # noqa: F401,F403 - Fail, HIDDEN, shown and the comparison helpers
from grader.grading.checks import HIDDEN, Fail, Registry, shown  # noqa: F401
from grader.sandbox import EnvironmentFault

from reference import minilm
from reference.weights import ModelMissing, layer_names, short_name

from .. import answers as A

LAB_CHECKS = Registry("lab322")
exercise = LAB_CHECKS.exercise
check = LAB_CHECKS.check


def environment(fn):
    """Run a reference computation on one thread; a missing model or tokenizer is the grading machine's fault.

    The forward passes are small (at most 40 short sentences): one thread is as fast, and more threads
    contend with the sandbox's process for the same cores (measured: the checks of the model solution
    took 2.9 s on one thread and 33 s on two, on a loaded 2-core machine).
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        _one_thread(+1)
        try:
            return fn(*args, **kwargs)
        except ModelMissing as exc:
            raise EnvironmentFault(f"the grading machine cannot run the MiniLM reference: {exc}") from None
        finally:
            _one_thread(-1)
    return wrapped


_THREADS = {"depth": 0, "saved": 1}
_THREADS_LOCK = threading.Lock()


def _one_thread(step: int) -> None:
    """torch's thread count is the process's: the first reference computation to start (of any thread: the
    self-check's warm thread runs beside the checks) sets it to 1, the last to end restores it."""
    with _THREADS_LOCK:
        if step > 0 and _THREADS["depth"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS["depth"] += step
        if step < 0 and _THREADS["depth"] == 0:
            torch.set_num_threads(_THREADS["saved"])


def public_sentences(n: int | None = None) -> list[str]:
    s = A.sentences("public")
    return s if n is None else s[:n]


def hidden_sentences() -> list[str]:
    return A.sentences("hidden")


def seeded_sentences(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` hidden sentences drawn from the seed, in the drawn order."""
    pool = hidden_sentences()
    return [pool[int(i)] for i in rng.choice(len(pool), n, replace=False)]


LAYERS = layer_names()
BY_SHORT = {short_name(n): n for n in LAYERS}


@functools.lru_cache(maxsize=64)
def _quantized(scheme: str, layer: str) -> torch.Tensor:
    return A.get_scheme(scheme).quantize(minilm.load()[layer])


@environment
def quantized_layer(scheme: str, layer: str) -> torch.Tensor:
    return _quantized(scheme, layer)


@functools.lru_cache(maxsize=256)
def _drop(texts: tuple[str, ...], scheme: str, layer: str) -> float:
    ref = A.fp32_embeddings(list(texts))
    return 1.0 - A.mean_cosine(ref, minilm.encode(list(texts), {layer: _quantized(scheme, layer)}))


@environment
def layer_drop(texts: Sequence[str], scheme: str, layer: str) -> float:
    """The reference drop ``1 - cosine`` with only ``layer`` quantized in ``scheme``, on ``texts``."""
    return _drop(tuple(texts), scheme, layer)


def as_int(value: Any, what: str) -> int:
    """An integer number of bytes: an int, or a float / 0-d tensor with an integral value."""
    number = as_number(value, what)  # noqa: F405 - from grader.grading.checks
    if not math.isfinite(number) or number != round(number):
        raise Fail(f"{what}: expected a whole number of bytes (an int), got {shown(value)}.")
    return int(round(number))


from . import sensitivity, plan, activations  # noqa: E402,F401  (registers the checks, in the notebook's order)


def warm_public(stop=None) -> None:
    """Compute, and cache, the reference values of the public checks, in the order they run (``LAB.warm``:
    the self-check runs it while the notebook runs); returns early once ``stop`` (an Event) is set."""
    from . import activations, plan, sensitivity

    steps = [*(lambda n=n: layer_drop(public_sentences(10), "int8", n) for n in sensitivity.PUBLIC_INT8),
             *(lambda n=n: layer_drop(public_sentences(20)[10:], "nvfp4", n) for n in sensitivity.PUBLIC_NVFP4),
             plan.uniform_best_bytes,
             lambda: environment(A.fp32_embeddings)(public_sentences()),  # every plan's cosine is measured against it
             lambda: activations.w8a8_reference(public_sentences(10))]
    for step in steps:
        if stop is not None and stop.is_set():
            return
        step()

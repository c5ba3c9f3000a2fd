"""Exercise ``sensitivity``: quantize one layer at a time and measure the drop of the task metric.

``layer_sensitivity(layers, scheme, sentences)`` returns ``{layer: 1 - mean cosine}``: only that
matrix in ``scheme``, the other 35 in FP32, the cosine against the FP32 embeddings of the same
sentences. Compared with :func:`labs.lab322.checks.layer_drop` within ``DROP_ABS + DROP_REL * drop``
(the notebook states "1e-5 + 0.1%"): the notebook's forward pass and quantizers are the reference's,
so only a float32 mean of the cosines could differ, by about 1e-7.

Public checks: INT8 per-tensor on four layers (the outlier layer among them) and NVFP4 on three, each on
10 public sentences. Hidden check: a fixed case first (the outlier layer and two others, MXFP4, 10 hidden
sentences: it fails every mistake class the hints name, whatever the seed), then three layers, a scheme
and 8 hidden sentences drawn from the seed. Each call runs at most 5 forward passes of 10 short
sentences (well under a second).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from reference import minilm
from reference.snr import calculate_snr
from reference.weights import OUTLIER_LAYER, short_name

from . import (BY_SHORT, LAYERS, Fail, as_number, check, environment, exercise, hidden_sentences,
               layer_drop, public_sentences, quantized_layer, seeded_sentences)
from .. import answers as A

exercise("sensitivity", "Exercise 1: layer sensitivity (one layer at a time)", order=1)

DROP_ABS = 1e-5
DROP_REL = 1e-3
PUBLIC_INT8 = [OUTLIER_LAYER, BY_SHORT["0.ffn_up"], BY_SHORT["2.ffn_down"], BY_SHORT["3.q"]]
PUBLIC_NVFP4 = [BY_SHORT["1.attn_out"], BY_SHORT["0.k"], BY_SHORT["5.ffn_down"]]
FIXED_HIDDEN = [OUTLIER_LAYER, BY_SHORT["2.ffn_up"], BY_SHORT["4.attn_out"]]
SEEDED_SCHEMES = ("int8", "nvfp4", "int4_g128", "fp8_e4m3fn")


def _close(got: float, want: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= DROP_ABS + DROP_REL * abs(want)


@environment
def _hint(got: dict, layers: Sequence[str], scheme: str, texts: Sequence[str]) -> str:
    """The likely mistake, from what the wrong values match (no value is shown)."""
    want = {n: layer_drop(texts, scheme, n) for n in layers}

    def matches(alt) -> bool:
        return all(_close(got[n], alt[n]) for n in layers) and not all(_close(want[n], alt[n]) for n in layers)

    if all(_close(got[n], 1.0 - want[n]) for n in layers):
        return " Your values look like the cosine itself: return the drop, 1 - cosine."
    if all(_close(got[n], -want[n]) for n in layers):
        return " Your values have the wrong sign: the drop is 1 - cosine (>= 0), not cosine - 1."
    if any(abs(got[n]) > 1.5 for n in layers) or matches(
            {n: calculate_snr(minilm.load()[n], quantized_layer(scheme, n)) for n in layers}):
        return (" Your values look like the SNR of the weights (dB), not the drop of the task metric: embed the "
                "sentences with the quantized layer and compare with the FP32 embeddings.")
    if scheme != "int8" and matches({n: layer_drop(texts, "int8", n) for n in layers}):
        return " Your values are INT8 per-tensor's: quantize in the scheme given, quantize(W[name], scheme)."
    public = public_sentences()
    if list(texts) != public and matches({n: layer_drop(public, scheme, n) for n in layers}):
        return (" Your values are measured on the notebook's 40 sentences: use the `sentences` argument, for the FP32 "
                "reference and for the quantized model.")
    cumulative, quantized = {}, {}
    ref = A.fp32_embeddings(list(texts))
    for n in layers:
        quantized[n] = quantized_layer(scheme, n)
        cumulative[n] = 1.0 - A.mean_cosine(ref, minilm.encode(list(texts), dict(quantized)))
    if matches(cumulative):
        return (" Your drops accumulate: each layer is measured with the layers before it still quantized. Quantize "
                "one layer at a time, the others in FP32 (start from the model's own weights for every layer).")
    return ""


def _compare(student, layers: list[str], scheme: str, texts: list[str], what: str, public: bool) -> None:
    got = student.call("layer_sensitivity", list(layers), scheme, list(texts))
    if not isinstance(got, dict):
        kind = "nothing (None)" if got is None else f"a {type(got).__name__}"
        raise Fail(f"layer_sensitivity on {what}: expected a dict {{layer: drop}}, got {kind}.")
    if set(got) != set(layers):
        detail = f" Asked for {', '.join(map(short_name, layers))}." if public else ""
        raise Fail(f"layer_sensitivity on {what}: the dict must have exactly the layers given as keys (their full "
                   f"checkpoint names, as in W).{detail}")
    values = {n: as_number(got[n], f"layer_sensitivity on {what}, the drop of a layer") for n in layers}
    wrong = [n for n in layers if not _close(values[n], layer_drop(texts, scheme, n))]
    if not wrong:
        return
    if public:
        n = wrong[0]
        detail = (f" For {short_name(n)} you gave {values[n]:.6g}, expected {layer_drop(texts, scheme, n):.6g} "
                  f"({len(wrong)} of {len(layers)} layers differ by more than 1e-5 + 0.1%).")
    else:
        detail = ""
    raise Fail(f"layer_sensitivity on {what}: the drops differ from quantizing each layer alone in the scheme given "
               f"and measuring 1 - mean cosine against FP32 on the sentences given.{detail}"
               f"{_hint(values, layers, scheme, texts)}")


@check("sensitivity", "sensitivity_int8_public", 1,
       "layer_sensitivity on 0.ffn_down, 0.ffn_up, 2.ffn_down and 3.q in INT8 per-tensor, the first 10 sentences",
       hidden=False)
def sensitivity_int8_public(student, rng):
    _compare(student, PUBLIC_INT8, "int8", public_sentences(10),
             "0.ffn_down, 0.ffn_up, 2.ffn_down, 3.q in 'int8', SENTENCES[:10]", public=True)


@check("sensitivity", "sensitivity_nvfp4_public", 1,
       "layer_sensitivity on 1.attn_out, 0.k and 5.ffn_down in NVFP4, sentences 10 to 19", hidden=False)
def sensitivity_nvfp4_public(student, rng):
    _compare(student, PUBLIC_NVFP4, "nvfp4", public_sentences(20)[10:],
             "1.attn_out, 0.k, 5.ffn_down in 'nvfp4', SENTENCES[10:20]", public=True)


def seeded_case(rng: np.random.Generator) -> tuple[list[str], str, list[str]]:
    """Three layers (never the public ones), a scheme and 8 hidden sentences, from the seed."""
    pool = [n for n in LAYERS if n not in PUBLIC_INT8 + PUBLIC_NVFP4]
    layers = [pool[int(i)] for i in rng.choice(len(pool), 3, replace=False)]
    return layers, SEEDED_SCHEMES[int(rng.integers(len(SEEDED_SCHEMES)))], seeded_sentences(rng, 8)


@check("sensitivity", "sensitivity_hidden", 2,
       "layer_sensitivity on other layers (the outlier layer among them), other schemes, hidden sentences")
def sensitivity_hidden(student, rng):
    _compare(student, FIXED_HIDDEN, "mxfp4", hidden_sentences()[:10],
             "three layers (the outlier layer among them) in MXFP4 on hidden sentences", public=False)
    layers, scheme, texts = seeded_case(rng)
    _compare(student, layers, scheme, texts, "three other layers in another scheme on hidden sentences", public=False)

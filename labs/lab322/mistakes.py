"""Lab 3.2.2's demo mistakes: typical wrong answers, each an edit of the model solution in one place.

``./lab demo --lab lab322`` submits the model solution, the untouched stubs and one notebook per
mistake, and prints what each scores (each mistake costs points of its own exercise only)."""

from __future__ import annotations

from grader.grading.labs import edit_cell as _edit


def _chain(*edits):
    def apply(sol: dict[str, str]) -> dict[str, str]:
        for edit in edits:
            sol = edit(sol)
        return sol
    return apply


MISTAKES = {
    "sensitivity_snr_not_metric": (
        "layer sensitivity measured by the SNR of the weights, not by the task metric",
        _edit("sensitivity_solution", "drops[name] = 1.0 - mean_cosine(reference, encode(sentences, {name: q}))",
              "drops[name] = snr_db(W[name], q)")),
    "sensitivity_cumulative": (
        "layers quantized one after another without restoring the previous ones",
        _chain(_edit("sensitivity_solution", "    drops = {}\n", "    drops, done = {}, {}\n"),
               _edit("sensitivity_solution", "        q = quantize(W[name], scheme)\n",
                     "        q = done[name] = quantize(W[name], scheme)\n"),
               _edit("sensitivity_solution", "encode(sentences, {name: q})", "encode(sentences, dict(done))"))),
    "plan_ignores_scales": (
        "bytes without the scales (elements only)",
        _edit("bytes_solution", "return math.ceil(n * bits / 8) + scales", "return math.ceil(n * bits / 8)")),
    "activations_per_tensor": (
        "per-token activation scales computed over the whole matrix (per tensor)",
        _edit("activations_solution", "scale = x.abs().amax(dim=-1, keepdim=True) / 127", "scale = x.abs().max() / 127")),
    "activations_max_not_absmax": (
        "activation scales from the largest value, not the largest magnitude",
        _edit("activations_solution", "scale = x.abs().amax(dim=-1, keepdim=True) / 127",
              "scale = x.amax(dim=-1, keepdim=True) / 127")),
}

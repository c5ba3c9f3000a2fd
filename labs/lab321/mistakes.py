"""Lab 3.2.1's demo mistakes: typical wrong answers, each an edit of the model solution in one place.

``./lab demo`` submits the model solution, the untouched stubs and one notebook per mistake, and
prints what each scores (README: the demo's table)."""

from __future__ import annotations

from grader.grading.labs import edit_cell as _edit


MISTAKES = {
    "snr_20log10": ("SNR with 20*log10 of a power ratio", _edit("snr_solution", "10 * torch.log10", "20 * torch.log10")),
    "snr_amplitude": ("SNR as a ratio of amplitudes (RMS), not powers",
                      _edit("snr_solution", "original.pow(2).sum() / noise", "(original.pow(2).sum() / noise).sqrt()")),
    "snr_swapped": ("signal power taken from the quantized tensor",
                    _edit("snr_solution", "original.pow(2).sum() / noise", "quantized.pow(2).sum() / noise")),
    "memory_gib": ("memory in GiB (2**30 bytes) instead of GB",
                   _edit("memory_solution", '        table[p] = {"memory_gb": mem,',
                         '        mem = mem * 1e9 / 2**30\n        table[p] = {"memory_gb": mem,')),
    "memory_no_headroom": ("inference without the KV-cache headroom",
                           _edit("memory_solution", "mem = weights * 1.2", "mem = weights")),
    "memory_training_x4": ("training memory as weights x 4 (no FP32 master weights and moments)",
                           _edit("memory_solution", "mem = weights + params_billions * (2 + 4 + 8)", "mem = weights * 4")),
    "advisor_fp4_training": ("FP4 recommended for training",
                             _edit("advisor_solution", '"training": ("bf16", "fp8")', '"training": ("bf16", "fp4")')),
    "advisor_fp32_training": ("FP32 ranked above BF16 for training",
                              _edit("advisor_solution", '"training": ("bf16", "fp8")', '"training": ("fp32", "bf16", "fp8")')),
    "advisor_ignores_budget": ("the advisor ignores the memory budget",
                               _edit("advisor_solution", "if mem <= memory_budget_gb:", "if mem <= 128:")),
    "weights_per_tensor": ("INT8 with one scale per tensor, not per output channel",
                           _edit("weights_solution", "w.abs().amax(dim=1, keepdim=True) / 127", "w.abs().max() / 127")),
}

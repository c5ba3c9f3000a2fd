"""Signal-to-noise ratio of a quantized tensor against the original, in dB (shared by the labs)."""

from __future__ import annotations

import math
from typing import Any

import torch



def calculate_snr(original: Any, quantized: Any) -> float:
    """Return the signal-to-noise ratio of ``quantized`` against ``original`` in dB.

    SNR = 10 * log10(sum(original**2) / sum((original - quantized)**2)), computed in float64.
    Identical tensors give +inf. An all-zero original with any error gives -inf.
    """
    a = _as_float64(original, "original")
    b = _as_float64(quantized, "quantized")
    if a.shape != b.shape:
        raise ValueError(
            f"original has shape {tuple(a.shape)} but quantized has shape {tuple(b.shape)}; "
            "SNR compares element by element, so pass tensors of the same shape."
        )
    for name, t in (("original", a), ("quantized", b)):
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{name} contains NaN ({int(torch.isnan(t).sum())} element(s)); SNR is undefined. "
                             "Check the quantizer for a division by zero.")
    signal = float((a * a).sum())
    noise = float(((a - b) ** 2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _as_float64(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(x)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; SNR needs at least one element.")
    return t.to(torch.float64).cpu()

"""``python -m reference``: the format table and the SNR of every format on Gaussian weights."""

import torch

from . import FORMATS, calculate_snr, fake_quantize


def main() -> None:
    print(f"{'format':<10}{'bits/elem':>10}{'max':>13}{'min normal':>12}  description")
    for f in FORMATS.values():
        mn = getattr(f, "min_normal", None)
        print(f"{f.name:<10}{f.bits_per_element:>10g}{f.max:>13.5g}{(f'{mn:.3g}' if mn else '-'):>12}  {f.description_line}")
    w = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0)) * 0.02
    print("\nSNR of N(0, 0.02^2) weights (1024 x 1024), default scaling of each format:")
    for name in FORMATS:
        print(f"  {name:<10}{calculate_snr(w, fake_quantize(w, name)):>8.2f} dB")


if __name__ == "__main__":
    main()

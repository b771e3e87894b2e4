"""Image quality metrics on tensors in [0, 1]."""

import torch


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB over all values (RGB PSNR for colour images)."""
    mse = torch.mean((image.double() - reference.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()

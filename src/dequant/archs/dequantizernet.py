"""DequantizerNet (Geleta & Martin Redondo): an SRGAN-like generator at the input's size.

conv 9x9 + PReLU -> R residual blocks (conv, BN, PReLU, conv, BN, skip) ->
conv + BN -> long skip from the first conv -> (no pixel-shuffle upsampling:
U = 0 for same-size restoration) -> conv 9x9 -> tanh.
"""

import torch
from torch import nn

from dequant.archs.common import start_as_identity, tanh_output


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.PReLU(width),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DequantizerNet(nn.Module):
    size_multiple = 1
    uses_quality = False

    def __init__(self, *, channels: int = 3, width: int = 24, blocks: int = 5, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if residual:
            start_as_identity(self.tail)

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
        features = self.head(image * 2 - 1)  # the paper's generator works on [-1, 1]
        return tanh_output(image, self.tail(features + self.body(features)), self.residual)

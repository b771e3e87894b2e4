"""DequantizerNet (Geleta & Martin Redondo): an SRGAN-like generator at the input's size.

conv 9x9 + PReLU -> R residual blocks (conv, BN, PReLU, conv, BN, skip) ->
conv + BN -> long skip from the first conv -> (no pixel-shuffle upsampling:
U = 0 for same-size restoration) -> conv 9x9 -> tanh.
`batch_norm=False` drops the BN layers, as ESRGAN and EDSR do: trained on batches of a few small
crops, the BN version did not learn to beat the JPEG (configs/dequantizernet.toml has the figures).
"""

import torch
from torch import nn

from dequant.archs.common import Contract, start_as_identity, tanh_output


def norm(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(width) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, width: int, batch_norm: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), norm(width, batch_norm), nn.PReLU(width),
                                  nn.Conv2d(width, width, 3, padding=1), norm(width, batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DequantizerNet(nn.Module):
    contract = Contract(size_multiple=1)

    def __init__(self, *, channels: int = 3, width: int = 24, blocks: int = 5, batch_norm: bool = True,
                 residual: bool = True):
        super().__init__()
        self.residual = residual
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*(ResidualBlock(width, batch_norm) for _ in range(blocks)),
                                  nn.Conv2d(width, width, 3, padding=1), norm(width, batch_norm))
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if residual:
            start_as_identity(self.tail)

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
        features = self.head(image * 2 - 1)  # the paper's generator works on [-1, 1]
        return tanh_output(image, self.tail(features + self.body(features)), self.residual)

"""Hourglass Block-GAN (Si & Kim 2023): a U-Net with a repeated hourglass block in its bottleneck.

Encoder: 4x4 stride-2 convs, batch norm, leaky ReLU. Bottleneck: the
hourglass block (down one more level and back up, dropout) repeated.
Decoder: mirrored 4x4 stride-2 transposed convs taking the encoder's skips,
tanh at the output. The paper upscaled 128-pixel faces to 512 before the
network; we restore natural images at their own size, so there is no resize.
"""

import torch
from torch import nn

from dequant.archs.common import Contract, pad_to, start_as_identity, tanh_output


def down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), *([nn.BatchNorm2d(cout)] if norm else []),
                         nn.LeakyReLU(0.2))


def up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2))


class HourglassBlock(nn.Module):
    """Bottleneck features down to half size and back; the input is added back so repeats refine."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(down(width, width), nn.Dropout(dropout), up(width, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HourglassUNet(nn.Module):
    def __init__(self, *, channels: int = 3, widths: tuple = (32, 64, 64, 96, 96), repeats: int = 4,
                 dropout: float = 0.7, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.contract = Contract(size_multiple=2 ** (len(widths) + 1))  # encoder levels plus the hourglass's own step down
        ins = (channels, *widths[:-1])
        self.encoder = nn.ModuleList(down(cin, cout, norm=i > 0) for i, (cin, cout) in enumerate(zip(ins, widths)))
        self.hourglass = nn.Sequential(*(HourglassBlock(widths[-1], dropout) for _ in range(repeats)))
        # The first decoder level takes the hourglass output; the others also the encoder's skip.
        self.decoder = nn.ModuleList(up(widths[i] * (1 if i == len(widths) - 1 else 2), widths[i - 1])
                                     for i in range(len(widths) - 1, 0, -1))
        self.output = nn.ConvTranspose2d(2 * widths[0], channels, 4, stride=2, padding=1)
        if residual:
            start_as_identity(self.output)

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
        height, width = image.shape[-2:]
        x = pad_to(image, self.contract.size_multiple)
        skips, y = [], x * 2 - 1  # the paper's [-1, 1] range
        for level in self.encoder:
            y = level(y)
            skips.append(y)
        y = self.decoder[0](self.hourglass(y))
        for level, skip in zip(self.decoder[1:], reversed(skips[1:-1])):
            y = level(torch.cat([y, skip], dim=1))
        out = self.output(torch.cat([y, skips[0]], dim=1))
        return tanh_output(x, out, self.residual)[..., :height, :width]

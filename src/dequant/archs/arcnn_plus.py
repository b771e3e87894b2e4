"""ARCNN+ (Huang & Tseng): Fast-ARCNN rebuilt from three "Conv Units".

Conv Unit: 3x3 conv -> 1x1 conv -> PReLU -> 3x3 conv -> PReLU. After three
units: 1x1 conv, 5x5 conv, PReLU. All at full resolution, trained with MSE.
"""

import torch
from torch import nn

from dequant.archs.common import Contract, pad_to


def conv_unit(cin: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.Conv2d(width, width, 1), nn.PReLU(width),
                         nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width))


class ArcnnPlus(nn.Module):
    contract = Contract(size_multiple=1)

    def __init__(self, *, channels: int = 3, width: int = 32, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.net = nn.Sequential(conv_unit(channels, width), conv_unit(width, width), conv_unit(width, width),
                                 nn.Conv2d(width, width, 1), nn.Conv2d(width, channels, 5, padding=2),
                                 nn.PReLU(channels))
        # He initialisation, made for PReLU networks: PyTorch's default shrinks the signal through
        # these eleven plain layers until the last one sees nothing to learn from (measured: no gain
        # after 500 steps). The last conv starts small, so the residual model starts near the identity.
        for layer in self.net.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, a=0.25)
                nn.init.zeros_(layer.bias)
        if residual:
            self.net[-2].weight.data.mul_(0.01)

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(pad_to(image, self.contract.size_multiple))
        return image + out if self.residual else out

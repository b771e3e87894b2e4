"""Galteri et al. 2017: the residual generator of "Deep Generative Adversarial Compression
Artifact Removal".

Works on YCbCr in [-1, 1]: a stride-2 3x3 conv to half size, residual blocks
of 3x3 convs with leaky ReLU, nearest-neighbour upsampling, one more conv,
then a 3-channel conv with tanh. Replication padding everywhere. One
architecture, trained three ways (MSE, SSIM, GAN): three registry entries.
"""

import torch
import torch.nn.functional as F
from torch import nn

from dequant.archs.common import Contract, pad_to, start_as_identity, tanh_output

# Full-range BT.601, as JPEG stores colour: ycbcr = RGB_TO_YCBCR @ rgb + CHROMA_OFFSET.
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
CHROMA_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="replicate")


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(conv(width, width), nn.LeakyReLU(0.2), conv(width, width), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Galteri(nn.Module):
    contract = Contract(size_multiple=2)

    def __init__(self, *, width: int = 32, blocks: int = 8, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.register_buffer("to_ycbcr", RGB_TO_YCBCR, persistent=False)
        self.register_buffer("to_rgb", torch.linalg.inv(RGB_TO_YCBCR), persistent=False)
        self.register_buffer("offset", CHROMA_OFFSET[:, None, None], persistent=False)
        self.entry = nn.Sequential(conv(3, width, stride=2), nn.LeakyReLU(0.2))
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.exit = nn.Sequential(conv(width, width), nn.LeakyReLU(0.2), conv(width, 3))
        if residual:
            start_as_identity(self.exit[-1])

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
        height, width = image.shape[-2:]
        ycbcr = torch.einsum("ij,bjhw->bihw", self.to_ycbcr, pad_to(image, self.contract.size_multiple)) + self.offset
        features = self.blocks(self.entry(ycbcr * 2 - 1))
        out = tanh_output(ycbcr, self.exit(F.interpolate(features, scale_factor=2, mode="nearest")), self.residual)
        rgb = torch.einsum("ij,bjhw->bihw", self.to_rgb, out - self.offset)
        return rgb[..., :height, :width]

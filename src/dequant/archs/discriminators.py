"""Discriminators of the papers. Each returns raw logits; the loss decides what to do with them.

All take (candidate, compressed): the conditional ones look at both, as the
papers condition on the compressed input; the global one judges the candidate alone.
"""

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int, norm: bool = True, padding: int = 1) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, 3 if padding <= 1 else 4, stride=stride, padding=padding)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.2)]


class PatchGAN(nn.Module):
    """pix2pix's PatchGAN on (input, output) pairs: a map of real/fake logits, one per receptive patch
    (hourglass paper)."""

    def __init__(self, *, channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            *_block(w, 2 * w, 2, padding=2), *_block(2 * w, 4 * w, 2, padding=2), *_block(4 * w, 8 * w, 1, padding=2),
            nn.Conv2d(8 * w, 1, 4, padding=1),
        )

    def forward(self, candidate: torch.Tensor, compressed: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([candidate, compressed], dim=1))


class SubPatch(nn.Module):
    """Galteri et al.: a conditional discriminator applied to every 16x16 sub-patch.

    Unpadded stride-1 3x3 convolutions with leaky ReLU, filters doubled every two
    layers (16 -> 4 pixels after six), then one logit per sub-patch.
    """

    size = 16

    def __init__(self, *, channels: int = 3, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_block(2 * channels, w, 1, False, 0), *_block(w, w, 1, False, 0),
            *_block(w, 2 * w, 1, False, 0), *_block(2 * w, 2 * w, 1, False, 0),
            *_block(2 * w, 4 * w, 1, False, 0), *_block(4 * w, 4 * w, 1, False, 0),
            nn.Flatten(), nn.Linear(4 * w * 4 * 4, 1),
        )

    def forward(self, candidate: torch.Tensor, compressed: torch.Tensor) -> torch.Tensor:
        x = torch.cat([candidate, compressed], dim=1)
        b, c, h, w = x.shape
        s = self.size
        x = x[..., : h - h % s, : w - w % s]
        patches = x.unfold(2, s, s).unfold(3, s, s).permute(0, 2, 3, 1, 4, 5).reshape(-1, c, s, s)
        return self.net(patches).view(b, -1)


class Global(nn.Module):
    """DequantizerNet's discriminator: strided conv + BN + leaky ReLU, channels growing as size
    halves, global average pool, one logit per image."""

    def __init__(self, *, channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.LeakyReLU(0.2),
            *_block(w, w, 2), *_block(w, 2 * w, 1), *_block(2 * w, 2 * w, 2),
            *_block(2 * w, 4 * w, 1), *_block(4 * w, 4 * w, 2), *_block(4 * w, 8 * w, 1), *_block(8 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(8 * w, 16 * w, 1), nn.LeakyReLU(0.2), nn.Conv2d(16 * w, 1, 1),
        )

    def forward(self, candidate: torch.Tensor, compressed: torch.Tensor) -> torch.Tensor:
        return self.net(candidate).flatten(1)


DISCRIMINATORS = {"patchgan": PatchGAN, "subpatch": SubPatch, "global": Global}

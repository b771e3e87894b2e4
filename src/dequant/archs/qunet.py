"""QUNet: a compact U-Net of residual blocks, conditioned on the JPEG quality.

The network works on the JPEG block grid: a 2x2 pixel-unshuffle and two
stride-2 convolutions bring it down to one position per 8x8 block, where
most of its depth sits (cheap there, and it sees whole blocks). Every
residual block is scaled per channel by a small embedding of the quality,
so one set of weights covers qualities 1 to 100. The output is a residual
added to the input, so an untrained network starts as the identity.

`block = "naf"` swaps the residual blocks for NAFNet's (Chen et al. 2022: channel
layer norm, depth-wise 3x3, a gate instead of an activation, simplified channel
attention, a gated feed-forward), and `condition = "tables"` conditions on the file's
quantization tables (luma and chroma) instead of one quality: candidates of the architecture
tournament (docs/tournament.md).
"""

import torch
import torch.nn.functional as F
from torch import nn

from dequant.archs.common import Add, Contract, Conv2dReLU, Mul
from dequant.condition import CONTENT_FEATURES


class QualityEmbedding(nn.Module):
    """Maps a JPEG quality (1..100) to a vector that the blocks turn into scales."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, quality: torch.Tensor) -> torch.Tensor:
        return self.mlp((quality.float() / 100.0).unsqueeze(-1))


class TableEmbedding(nn.Module):
    """Maps a file's quantization tables (jpeg.table_features: 128 numbers), and what kind of picture it holds
    where told (condition.content_features), to the same kind of vector."""

    def __init__(self, dim: int, inputs: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(inputs, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, tables: torch.Tensor) -> torch.Tensor:
        return self.mlp(tables.float())


class ResBlock(nn.Module):
    """conv-ReLU-conv with a skip; the quality sets a per-channel gain on the branch."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.conv1 = Conv2dReLU(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.gain = nn.Linear(cond_dim, channels)
        self.scale, self.merge = Mul(), Add()  # modules, so that int8 computes them as its runtime does

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(self.conv1(x))
        return self.merge(x, self.scale(branch, (1 + self.gain(cond))[:, :, None, None]))


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=1)
    return first * second


class NAFBlock(nn.Module):
    """NAFNet's block, its two branches scaled per channel by the quality like ResBlock's."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        wide = 2 * channels
        self.norm1, self.norm2 = LayerNorm2d(channels), LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, wide, 1)
        self.depthwise = nn.Conv2d(wide, wide, 3, padding=1, groups=wide)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))
        self.project = nn.Conv2d(channels, channels, 1)
        self.ffn_in, self.ffn_out = nn.Conv2d(channels, wide, 1), nn.Conv2d(channels, channels, 1)
        self.gains = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain_mix, gain_ffn = (1 + self.gains(cond))[:, :, None, None].chunk(2, dim=1)
        y = simple_gate(self.depthwise(self.expand(self.norm1(x))))
        x = x + self.project(y * self.attention(y)) * gain_mix
        return x + self.ffn_out(simple_gate(self.ffn_in(self.norm2(x)))) * gain_ffn


BLOCKS = {"res": ResBlock, "naf": NAFBlock}


class Stage(nn.Module):
    """A run of residual blocks at one resolution."""

    def __init__(self, channels: int, blocks: int, cond_dim: int, block: str = "res"):
        super().__init__()
        self.blocks = nn.ModuleList(BLOCKS[block](channels, cond_dim) for _ in range(blocks))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, cond)
        return x


class QUNet(nn.Module):
    def __init__(
        self,
        *,
        channels: int = 3,
        widths: tuple[int, int, int] = (32, 64, 128),
        blocks: tuple[int, int, int] = (2, 2, 4),
        cond_dim: int = 64,
        block: str = "res",  # res | naf
        condition: str = "quality",  # quality (the IJG quality the file reads) | tables (the file's tables) | tables+content
    ):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"qunet block takes {' or '.join(BLOCKS)}")
        if condition not in ("quality", "tables", "tables+content"):
            raise ValueError("qunet condition takes quality, tables or tables+content")
        w1, w2, w3 = widths
        # One bottleneck position per 8x8 JPEG block: inputs are padded to that grid. In int8, every convolution
        # but the first reads a block's, a skip's or a convolution's rounded output.
        stages = (("enc1", blocks[0]), ("enc2", blocks[1]), ("middle", blocks[2]), ("dec2", blocks[1]), ("dec1", blocks[0]))
        on_levels = () if block != "res" else ("down1", "down2", "up2.0", "up1.0", "tail.0", *(
            f"{stage}.blocks.{i}.{conv}" for stage, count in stages for i in range(count) for conv in ("conv1", "conv2")))
        self.contract = Contract(condition=condition, size_multiple=8, int8_inputs_on_levels=on_levels)
        self.embed = (QualityEmbedding(cond_dim) if condition == "quality" else
                      TableEmbedding(cond_dim, 128 + (CONTENT_FEATURES if condition == "tables+content" else 0)))
        self.head = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * channels, w1, 3, padding=1))
        self.enc1 = Stage(w1, blocks[0], cond_dim, block)
        self.down1 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.enc2 = Stage(w2, blocks[1], cond_dim, block)
        self.down2 = nn.Conv2d(w2, w3, 3, stride=2, padding=1)
        self.middle = Stage(w3, blocks[2], cond_dim, block)
        self.up2 = nn.Sequential(nn.Conv2d(w3, 4 * w2, 1), nn.PixelShuffle(2))
        self.dec2 = Stage(w2, blocks[1], cond_dim, block)
        self.up1 = nn.Sequential(nn.Conv2d(w2, 4 * w1, 1), nn.PixelShuffle(2))
        self.dec1 = Stage(w1, blocks[0], cond_dim, block)
        self.tail = nn.Sequential(nn.Conv2d(w1, 4 * channels, 3, padding=1), nn.PixelShuffle(2))
        self.join2, self.join1 = Add(), Add()  # the skips
        # Start as the identity: the residual is zero until training says otherwise.
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, image: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """image: (B, C, H, W) in [0, 1]; quality: (B,) JPEG quality, or (B, 128) table features when
        conditioned on tables. Returns the restored image."""
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % self.contract.size_multiple, -width % self.contract.size_multiple
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
        cond = self.embed(quality)
        s1 = self.enc1(self.head(x), cond)
        s2 = self.enc2(self.down1(s1), cond)
        y = self.middle(self.down2(s2), cond)
        y = self.dec2(self.join2(self.up2(y), s2), cond)
        y = self.dec1(self.join1(self.up1(y), s1), cond)
        return (x + self.tail(y))[..., :height, :width]

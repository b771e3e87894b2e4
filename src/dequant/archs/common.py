"""Small pieces the generators share: their contract, padding to a size multiple, and the output step."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Contract:
    """What a generator is told and what it needs (spandrel's model descriptor, reduced to ours)."""

    condition: str = "none"  # quality: the IJG quality the file reads (B,); tables: jpeg.table_features (B, 128); none
    size_multiple: int = 1  # it pads its input to this grid itself; tiles are on the 16-pixel grid anyway
    needs_target: bool = False  # training passes the clean batch as `target=` and gets (restored, loss terms)
    tiling_safe: bool = True  # its output at a pixel depends only on a bounded neighbourhood (tiles may be used)
    precisions: tuple = ("fp32", "bf16", "fp16")  # what it may compute in
    # int8 (dequant.int8): convolutions whose input arrives already rounded, from quantized Conv2d/Add/Mul
    # producers, and so is not rounded a second time (the runtime then needs no requantization between them).
    int8_inputs_on_levels: tuple = ()


class Add(nn.Module):
    """a + b as a module, so that dequant.int8 can compute it as an int8 runtime does (QLinearAdd)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Conv2dReLU(nn.Conv2d):
    """A convolution and the ReLU after it as one module (its weights named as a plain Conv2d's), so that int8
    rounds the ReLU's output only: all 256 levels on the values the next convolution reads, and onnxruntime
    fuses convolution and ReLU into one QLinearConv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class Mul(nn.Module):
    """a * b as a module, so that dequant.int8 can compute it as an int8 runtime does (QLinearMul)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b



def pad_to(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom and right edges so height and width divide by `multiple`."""
    height, width = image.shape[-2:]
    return F.pad(image, (0, -width % multiple, 0, -height % multiple), mode="replicate")


def start_as_identity(layer: nn.Module) -> None:
    """Zero the last layer of a residual generator: an untrained network returns its input."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


def tanh_output(image: torch.Tensor, out: torch.Tensor, residual: bool) -> torch.Tensor:
    """The papers end in tanh over [-1, 1]. As a residual it is a correction added to the input,
    which on two CPU cores reaches a useful model in far fewer steps than predicting whole pixels."""
    return image + torch.tanh(out) if residual else (torch.tanh(out) + 1) / 2

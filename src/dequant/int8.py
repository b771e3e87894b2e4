"""int8 inference: a generator's convolutions and residual arithmetic computed as an int8 runtime computes them.

`prepare` swaps every convolution for a `QuantConv`, which rounds its input and output to 8-bit unsigned
levels over observed ranges (per tensor, affine) and its weights to signed levels per output channel
(symmetric), as onnxruntime's QLinearConv computes, in float; and the architecture's Add and Mul modules
(residual sums, skips, per-picture gains) for `QuantAdd` and `QuantMul` (QLinearAdd, QLinearMul). An input
the architecture's contract declares already rounded by its producer is not rounded again. In training mode the ranges are observed:
a model can be calibrated (forward passes over val crops) and fine-tuned with the rounding in its forward
pass (quantization-aware training, `TrainConfig.int8`), the gradient passing the rounding straight
through. In eval mode they stay as found, and the ONNX export carries them as QuantizeLinear /
DequantizeLinear pairs, which onnxruntime fuses into int8 kernels.

Weights use 7 bits by default (-63..63): without VNNI, x86 int8 kernels multiply u8 by s8 and add pairs
in 16 bits, which can saturate with full 8-bit weights and activations (onnxruntime's `reduce_range`).
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from dequant import archs


CLIP_SAMPLES = 1 << 18  # values a clipped range's ends are found among per batch (a strided sample: cheap, no RNG)


class Range(nn.Module):
    """An observed range of values and its uint8 levels (per tensor, affine), observed in training mode: the
    extremes seen (`momentum` None: calibration), a moving average of each batch's (`momentum` in (0, 1]), or
    not at all (`momentum` 0: fixed by a calibration, while quantization-aware training adapts the weights).
    With `clip`, a batch's range leaves out that fraction of its values at each end: min-max ranges were measured
    ~1.5x wider than their 1e-4 quantiles (a few outliers), and every other value pays for them in coarser levels.
    The range always holds zero, as zero padding needs."""

    def __init__(self, momentum: float | None = None, clip: float = 0.0):
        super().__init__()
        self.momentum, self.clip = momentum, clip
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))

    def extremes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.clip:
            return x.amin(), x.amax()
        values = x.flatten()
        values = values[:: max(1, values.numel() // CLIP_SAMPLES)].float()
        outside = max(1, int(self.clip * values.numel()))  # top-k: a step of quantization-aware training sorts nothing
        return values.topk(outside, largest=False).values[-1], values.topk(outside).values[-1]

    def observe(self, x: torch.Tensor) -> None:
        low, high = self.extremes(x.detach())
        if not torch.isfinite(self.low):
            self.low.copy_(low)
            self.high.copy_(high)
        elif self.momentum is None:
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)

    def learn(self) -> None:
        """Makes the ends trainable (a calibrated range's start): the loss then moves each end, trading the values
        clipped at it against the coarser levels of every other value (learned step size, Esser et al. 2020)."""
        for name in ("low", "high"):
            end = getattr(self, name).detach().clone()
            delattr(self, name)
            self.register_parameter(name, nn.Parameter(end))

    def forward(self, x: torch.Tensor, observing: bool) -> torch.Tensor:
        """`x` rounded to the range's 256 levels (the gradient passes the rounding straight through)."""
        if isinstance(self.high, nn.Parameter) and self.training:
            return self.rounded_learning(x)
        if observing and self.momentum != 0:
            self.observe(x)
        low, high = min(float(self.low), 0.0), max(float(self.high), 0.0)
        scale = max(high - low, 1e-8) / 255
        return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-low / scale)), 0, 255)

    def rounded_learning(self, x: torch.Tensor) -> torch.Tensor:
        """The same rounding, differentiable in the ends too: inside the range a value's rounding error, at a
        clipped value its distance to the end, flow back to the step (the straight-through gradient of each round)."""
        low, high = self.low.clamp(max=0.0), self.high.clamp(min=0.0)
        scale = (high - low).clamp_min(1e-8) / 255
        zero = straight_round(-low / scale).clamp(0, 255)
        levels = (straight_round(x / scale) + zero).clamp(0, 255)
        return (levels - zero) * scale


def straight_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) whose gradient is 1, as if it were not rounded."""
    return x + (torch.round(x) - x).detach()


class QuantConv(nn.Module):
    """A Conv2d computed as an int8 runtime computes it: uint8 input and output levels per tensor, int8
    weights per output channel (symmetric, within +-weight_levels). An input that arrives rounded by its
    producer (`input_on_levels`) is read as it is. A Conv2dReLU's output is rounded after its ReLU."""

    def __init__(self, conv: nn.Conv2d, weight_levels: int = 63, momentum: float | None = None,
                 input_on_levels: bool = False, clip: float = 0.0):
        super().__init__()
        self.conv, self.weight_levels, self.input_on_levels = conv, weight_levels, input_on_levels
        self.relu = isinstance(conv, archs.common.Conv2dReLU)
        self.input, self.output = Range(momentum, clip), Range(momentum, clip)

    def extra_repr(self) -> str:  # part of the ONNX cache key (onnx_graph.cached_graph)
        return f"weight_levels={self.weight_levels}, input_on_levels={self.input_on_levels}, relu={self.relu}"

    def weight_scales(self) -> torch.Tensor:
        scales = self.conv.weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / self.weight_levels
        if not self.training:  # constants for the export, so that the runtime finds int8 weights to fuse
            scales = torch.tensor(scales.tolist(), dtype=torch.float32)
        return scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        observing = self.training  # validation and export never move the ranges
        scales = self.weight_scales()
        # Levels -128..127 as ONNX stores them; the scale keeps the weights within +-weight_levels of them.
        weight = torch.fake_quantize_per_channel_affine(self.conv.weight, scales, torch.zeros_like(scales, dtype=torch.int32),
                                                        0, -128, 127)
        conv = self.conv
        x = x if self.input_on_levels else self.input(x, observing)
        y = F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        return self.output(F.relu(y) if self.relu else y, observing)


class QuantAdd(nn.Module):
    """a + b as QLinearAdd computes it: both inputs arrive rounded (a block's or a convolution's output), the
    sum is rounded to its own levels."""

    def __init__(self, momentum: float | None = None, clip: float = 0.0):
        super().__init__()
        self.output = Range(momentum, clip)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.output(a + b, self.training)


class QuantMul(nn.Module):
    """a * b as QLinearMul computes it: `a` arrives rounded, `b` (a block's per-picture channel gains) is
    rounded here, the product to its own levels."""

    def __init__(self, momentum: float | None = None, clip: float = 0.0):
        super().__init__()
        self.factor, self.output = Range(momentum, clip), Range(momentum, clip)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.output(a * self.factor(b, self.training), self.training)


@torch.no_grad()
def calibrate(model: nn.Module, inputs) -> None:
    """Sets every range of a prepared `model` to the widest (clipped) range that any of `inputs` ((image,
    condition) pairs: whole pictures) needs, then fixes them. Measured: a moving average of training crops'
    ranges sat 0.02-0.08 dB below ranges calibrated on whole pictures (val, Q50-90), whose outliers crops miss."""
    ranges = [module for module in model.modules() if isinstance(module, Range)]
    for value_range in ranges:
        value_range.momentum = None
        value_range.low.fill_(float("inf"))
        value_range.high.fill_(float("-inf"))
    was_training = model.training
    model.train()
    for image, told in inputs:
        model(image, told)
    model.train(was_training)
    for value_range in ranges:
        value_range.momentum = 0.0


def learn_ranges(model: nn.Module) -> list[nn.Parameter]:
    """Makes every range of a calibrated `model` that rounds something trainable (not the input ranges of
    convolutions that read rounded values: never observed, infinite); returns their ends (an optimizer group of
    their own: ends of 0.1-10 move by a larger step than weights do)."""
    unread = {id(conv.input) for conv in model.modules() if isinstance(conv, QuantConv) and conv.input_on_levels}
    ranges = [module for module in model.modules() if isinstance(module, Range) and id(module) not in unread]
    for value_range in ranges:
        value_range.learn()
    return [end for value_range in ranges for end in (value_range.low, value_range.high)]


def is_quantized(model: nn.Module) -> bool:
    """Whether `model` went through `prepare` (its contract says it computes in int8 only)."""
    return model.contract.precisions == ("int8",)


def prepare(model: nn.Module, keep_float: tuple[str, ...] = (), momentum: float | None = None,
            clip: float = 0.0) -> nn.Module:
    """`model` with every Conv2d (but those named in `keep_float`) computing as int8 would, and its Add and Mul
    modules (archs.common) too; in place. The ranges are observed in training mode: the extremes seen
    (calibration), or a moving average with `momentum`, leaving out `clip` of the values at each end. With
    the arithmetic in int8 as well, onnxruntime keeps
    the residual stream in uint8 (QLinearAdd, QLinearMul): measured 12 % faster than rounding around the
    convolutions alone (docs/int8.md). `keep_float` is for the last convolution (the correction added to the
    image): a float convolution read by one that expects rounded inputs still computes right, but in float."""
    on_levels = model.contract.int8_inputs_on_levels
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Conv2d) and full not in keep_float:
                setattr(module, child_name, QuantConv(child, momentum=momentum, input_on_levels=full in on_levels, clip=clip))
            elif isinstance(child, (archs.common.Add, archs.common.Mul)):
                quantized = QuantAdd if isinstance(child, archs.common.Add) else QuantMul
                setattr(module, child_name, quantized(momentum, clip))
    model.contract = dataclasses.replace(model.contract, precisions=("int8",))  # an int8 runtime computes it
    return model

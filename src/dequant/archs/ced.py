"""CED (Yoo et al. 2018): a classifier of local frequency content plus an encoder-decoder.

The classifier C predicts, for every 4x4 patch of the Laplacian of the
luminance, which of 7 equal-population bins each of the patch's 16 DCT
coefficients falls in: two stages, the second seeing the first's
probabilities, cross-entropy averaged over both. The encoder E takes the
JPEG to quarter size; the decoder D gets E's features concatenated with the
coefficient map and upsamples by pixel shuffle. D is trained on the clean
image's true coefficients (the paper's CED-GT) so that it learns to trust
them; at test time it gets the classifier's estimate. There is no GAN.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from dequant.archs.common import Contract, pad_to, start_as_identity

PATCH = 4  # DCT patch side: 16 frequency channels
CLASSES = 7
CHANNELS = PATCH * PATCH
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def dct_filters(n: int = PATCH) -> torch.Tensor:
    """The orthonormal 2-D DCT-II basis as (n*n, 1, n, n) convolution filters."""
    k = torch.arange(n, dtype=torch.float32)
    basis = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return torch.einsum("ux,vy->uvxy", basis, basis).reshape(n * n, 1, n, n)


def frequencies(image: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 16, H/4, W/4): DCT coefficients of 4x4 patches of the luma's Laplacian."""
    luma = (0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2])[:, None]
    laplacian = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), LAPLACIAN.to(image)[None, None])
    return F.conv2d(laplacian, filters, stride=PATCH)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(conv(width, width), nn.LeakyReLU(0.2), conv(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def extractor(widths: tuple) -> nn.Sequential:
    """The paper's feature extractor, shared in structure by C and E: two stride-2 blocks to 1/4 size."""
    w1, w2 = widths
    return nn.Sequential(conv(3, w1), nn.LeakyReLU(0.2),
                         conv(w1, w1, stride=2), nn.LeakyReLU(0.2), ResidualBlock(w1),
                         conv(w1, w2, stride=2), nn.LeakyReLU(0.2), ResidualBlock(w2))


class Classifier(nn.Module):
    def __init__(self, widths: tuple, stages: int):
        super().__init__()
        width, logits = widths[1], CHANNELS * CLASSES
        self.features = extractor(widths)
        self.stages = nn.ModuleList(
            nn.Sequential(conv(width + (logits if t else 0), width), nn.LeakyReLU(0.2), ResidualBlock(width),
                          nn.Conv2d(width, logits, 1))
            for t in range(stages))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Per stage, logits of shape (B, CLASSES, 16, H/4, W/4)."""
        f = self.features(image * 2 - 1)
        outputs = []
        for stage in self.stages:
            probabilities = [F.softmax(outputs[-1], dim=1).flatten(1, 2)] if outputs else []
            logits = stage(torch.cat([f, *probabilities], dim=1))
            outputs.append(logits.unflatten(1, (CLASSES, CHANNELS)))
        return outputs


class CED(nn.Module):
    # Training passes the clean image: true coefficients for D, labels for C.
    contract = Contract(size_multiple=PATCH, needs_target=True)

    def __init__(self, *, widths: tuple = (32, 64), stages: int = 2, estimate: str = "argmax",
                 truth_share: float = 1.0, residual: bool = True):
        super().__init__()
        if estimate not in ("argmax", "mean"):
            raise ValueError("estimate takes argmax (the paper's) or mean (the expected coefficient)")
        # truth_share: the share of training crops whose decoder sees the true coefficients (1 = the
        # paper's CED-GT); the others see the classifier's estimate, as at test time (CED-EST).
        self.estimate, self.truth_share, self.residual = estimate, truth_share, residual
        w1, w2 = widths
        self.classifier = Classifier(widths, stages)
        self.encoder = extractor(widths)
        self.decoder = nn.Sequential(
            conv(w2 + CHANNELS, w2), nn.LeakyReLU(0.2), ResidualBlock(w2),
            nn.Conv2d(w2, 4 * w1, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2), ResidualBlock(w1),
            nn.Conv2d(w1, 4 * w1, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2), ResidualBlock(w1),
            conv(w1, 3))  # no activation after the output convolution, as in the paper
        if residual:
            start_as_identity(self.decoder[-1])
        self.register_buffer("filters", dct_filters(), persistent=False)
        # The bins: fixed from the first training batch's true coefficients, then saved with the weights.
        self.register_buffer("edges", torch.zeros(CHANNELS, CLASSES - 1))
        self.register_buffer("centers", torch.zeros(CHANNELS, CLASSES))
        self.register_buffer("scale", torch.ones(CHANNELS))
        self.register_buffer("bins_fitted", torch.tensor(False))

    def fit_bins(self, coefficients: torch.Tensor) -> None:
        """Equal-population bins per frequency channel; each class stands for its bin's median."""
        flat = coefficients.detach().transpose(0, 1).flatten(1).float()
        levels = torch.arange(1, 2 * CLASSES, device=flat.device) / (2 * CLASSES)
        quantiles = torch.quantile(flat, levels, dim=1).T  # (16, 13): centers at odd levels, edges between
        self.centers.copy_(quantiles[:, 0::2])
        self.edges.copy_(quantiles[:, 1::2])
        self.scale.copy_(flat.std(dim=1).clamp_min(1e-6))
        self.bins_fitted.fill_(True)

    def classes_of(self, coefficients: torch.Tensor) -> torch.Tensor:
        return (coefficients[:, :, None] > self.edges[None, :, :, None, None]).sum(2)

    def values_of(self, classes: torch.Tensor) -> torch.Tensor:
        """The paper's mapping M: each class stands for its bin's median."""
        return self.centers.T[classes, torch.arange(CHANNELS, device=classes.device)[:, None, None]]

    def estimated_values(self, logits: torch.Tensor) -> torch.Tensor:
        """M(argmax p), as in the paper, or the expected value under p, which hedges where C is unsure."""
        if self.estimate == "argmax":
            return self.values_of(logits.argmax(1))
        return torch.einsum("bkchw,ck->bchw", F.softmax(logits, dim=1), self.centers)

    def decode(self, image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Decoder input: E's features and the coefficient map, normalised per channel."""
        out = self.decoder(torch.cat([self.encoder(image * 2 - 1), values / self.scale[None, :, None, None]], dim=1))
        return image + out if self.residual else out

    def forward(self, image: torch.Tensor, quality: torch.Tensor | None = None, target: torch.Tensor | None = None):
        """Restored image; in training (`target` given) also {"ce": the classifier's cross-entropy}."""
        height, width = image.shape[-2:]
        x = pad_to(image, self.contract.size_multiple)
        stages = self.classifier(x)
        if target is None:
            return self.decode(x, self.estimated_values(stages[-1]))[..., :height, :width]
        truth = frequencies(pad_to(target, self.contract.size_multiple), self.filters)
        if not self.bins_fitted:
            self.fit_bins(truth)
        labels = self.classes_of(truth)
        cross_entropy = sum(F.cross_entropy(logits, labels) for logits in stages) / len(stages)
        values = self.values_of(labels)
        if self.truth_share < 1:
            estimated = self.estimated_values(stages[-1].detach())  # the decoder's loss never trains C
            use_truth = torch.rand(len(values), 1, 1, 1, device=values.device) < self.truth_share
            values = torch.where(use_truth, values, estimated)
        return self.decode(x, values)[..., :height, :width], {"ce": cross_entropy}

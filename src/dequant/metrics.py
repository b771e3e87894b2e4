"""Image quality metrics as the JPEG-restoration literature computes them.

Inputs are HxW or HxWxC arrays on the 0..255 scale (uint8 or float), except
LPIPS, which takes HxWx3 uint8.
"""

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _mse(image, reference) -> float:
    difference = np.asarray(image, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(np.mean(difference**2))


def _psnr_from_mse(mse: float, peak: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def psnr(image, reference, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all values (RGB PSNR for colour images)."""
    return _psnr_from_mse(_mse(image, reference), peak)


def ssim(image, reference) -> float:
    """SSIM of Wang et al. 2004 (Gaussian window, sigma 1.5, K1 0.01, K2 0.03) via scikit-image;
    the mean over channels for colour."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(image, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=2 if a.ndim == 3 else None))


def luma_bt601(rgb) -> np.ndarray:
    """Studio-range BT.601 luma as MATLAB's rgb2ycbcr computes it: 16 + (65.481 R + 128.553 G + 24.966 B) / 255."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16 + (rgb[..., 0] * 65.481 + rgb[..., 1] * 128.553 + rgb[..., 2] * 24.966) / 255


def blocking_effect_factor(image, block: int = 8) -> float:
    """Yim and Bovik 2011: how much stronger the steps across 8x8 block edges are than inside blocks."""
    y = np.asarray(image, dtype=np.float64)
    height, width = y.shape
    across_columns = (y[:, :-1] - y[:, 1:]) ** 2  # pair (j, j+1) for every j
    across_rows = (y[:-1, :] - y[1:, :]) ** 2
    edge_cols = np.arange(block - 1, width - 1, block)  # pairs (7, 8), (15, 16), ...
    edge_rows = np.arange(block - 1, height - 1, block)
    edge_sum = across_columns[:, edge_cols].sum() + across_rows[edge_rows, :].sum()
    edge_count = height * len(edge_cols) + width * len(edge_rows)
    inner_sum = across_columns.sum() + across_rows.sum() - edge_sum
    inner_count = height * (width - 1) + width * (height - 1) - edge_count
    if edge_count == 0 or inner_count == 0:
        return 0.0
    excess = edge_sum / edge_count - inner_sum / inner_count
    eta = math.log2(block) / math.log2(min(height, width))
    return eta * excess if excess > 0 else 0.0


def psnr_b(image, reference) -> float:
    """PSNR-B on the 0..255 scale: the MSE plus the blocking effect factor of the image.

    For colour, as the published tables: the MSE over all RGB values plus the
    BEF of the image's BT.601 luma.
    """
    image = np.asarray(image, dtype=np.float64)
    luma = luma_bt601(image) if image.ndim == 3 and image.shape[2] == 3 else image.reshape(image.shape[:2])
    return _psnr_from_mse(_mse(image, reference) + blocking_effect_factor(luma), 255.0)


# ---- LPIPS v0.1 with AlexNet (Zhang et al. 2018), plain torch ----

SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights"


def feature_weights_dir() -> Path:
    """Where the ImageNet feature networks and LPIPS layers live: $DEQUANT_FEATURE_WEIGHTS or ../shared/weights."""
    return Path(os.environ.get("DEQUANT_FEATURE_WEIGHTS", SHARED_WEIGHTS))


LPIPS_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
LPIPS_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def lpips_activations(features: nn.Sequential, taps, x: torch.Tensor) -> list[torch.Tensor]:
    """LPIPS's view of an image in [-1, 1]: the feature network's activations at `taps`, each
    unit-normalised over its channels (AlexNet here, VGG16 in losses.LPIPSVGG)."""
    x = (x - LPIPS_SHIFT.to(x)) / LPIPS_SCALE.to(x)
    out = []
    for index, layer in enumerate(features):
        x = layer(x)
        if index in taps:
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
    return out


class LPIPS(nn.Module):
    """Learned perceptual distance: unit-normalised AlexNet activations, weighted squared differences."""

    taps = (1, 4, 7, 9, 11)  # after each ReLU of torchvision's alexnet().features

    def __init__(self, weights_dir: Path | None = None):
        super().__init__()
        from safetensors.torch import load_file

        folder = weights_dir or feature_weights_dir()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )
        self.features.load_state_dict({k.removeprefix("features."): v for k, v in
                                       load_file(folder / "alexnet_imagenet_features.safetensors").items()})
        linear = load_file(folder / "lpips_v0.1_alex_lin.safetensors")
        self.linear = [linear[f"lin{i}.model.1.weight"] for i in range(len(self.taps))]
        self.eval().requires_grad_(False)

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return lpips_activations(self.features, self.taps, x)

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) tensors in [-1, 1] -> (N,) distances."""
        distance = 0
        for a, b, w in zip(self._activations(image), self._activations(reference), self.linear):
            distance = distance + ((a - b) ** 2 * w).sum(dim=1).mean(dim=(1, 2))
        return distance

    @torch.inference_mode()
    def score(self, image, reference) -> float:
        """LPIPS between two HxWx3 (or HxW) uint8 arrays."""
        def prepare(pixels):
            x = torch.from_numpy(np.asarray(pixels, dtype=np.float32))
            x = x[..., None].expand(*x.shape, 3) if x.ndim == 2 else x
            return (x.permute(2, 0, 1)[None] / 127.5) - 1
        return float(self(prepare(image), prepare(reference))[0])

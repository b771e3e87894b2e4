"""Training losses: pixel, SSIM, VGG16 perceptual, LPIPS-VGG, and the papers' adversarial forms."""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dequant.metrics import feature_weights_dir, lpips_activations

# ---- pixel error per crop, in dB ----


def mse_db(restored: torch.Tensor, clean: torch.Tensor, compressed: torch.Tensor, floor: float = 1.0) -> torch.Tensor:
    """Mean over the batch of each crop's MSE in dB relative to its JPEG's: minus the crop's PSNR gain. Both
    MSEs get `floor` squared levels (of 255) added, so that crops the JPEG renders almost exactly do not weigh
    without bound."""
    def per_crop(image):
        return (image - clean).pow(2).flatten(1).mean(1) + floor / 255**2
    return 10 * torch.log10(per_crop(restored) / per_crop(compressed)).mean()


# ---- structural similarity, differentiable (Gaussian window 11, sigma 1.5) ----


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum())[:, None] @ (g / g.sum())[None, :]
    return g.expand(channels, 1, size, size).contiguous()


def ssim(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of (N, C, H, W) tensors in [0, 1] (valid region, per channel)."""
    c = image.shape[1]
    window = _gaussian_window(c).to(image)
    blur = lambda x: F.conv2d(x, window, groups=c)
    mu_x, mu_y = blur(image), blur(reference)
    var_x = blur(image * image) - mu_x**2
    var_y = blur(reference * reference) - mu_y**2
    cov = blur(image * reference) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.mean()


# ---- VGG16 perceptual loss ----

# torchvision's vgg16().features: conv name -> (index, output channels); ReLUs follow each conv,
# max-pools sit at 4, 9, 16, 23. "reluX_Y" names the ReLU right after convX_Y.
VGG16_CONVS = {"conv1_1": (0, 64), "conv1_2": (2, 64), "conv2_1": (5, 128), "conv2_2": (7, 128),
               "conv3_1": (10, 256), "conv3_2": (12, 256), "conv3_3": (14, 256), "conv4_1": (17, 512),
               "conv4_2": (19, 512), "conv4_3": (21, 512), "conv5_1": (24, 512), "conv5_2": (26, 512),
               "conv5_3": (28, 512)}
_POOLS = {4, 9, 16, 23}


def vgg16_last_index(layer: str) -> int:
    prefix, position = layer[:4], layer[4:]
    if prefix not in ("conv", "relu") or f"conv{position}" not in VGG16_CONVS:
        raise ValueError(f"unknown VGG16 layer {layer!r} (e.g. conv4_1, relu4_1)")
    return VGG16_CONVS[f"conv{position}"][0] + (prefix == "relu")


def vgg16_weights() -> dict[str, torch.Tensor]:
    """VGG16 ImageNet conv weights: ../shared/weights (or $DEQUANT_FEATURE_WEIGHTS), else the Hub's
    timm/vgg16.tv_in1k (same key names)."""
    from safetensors.torch import load_file

    from dequant import weights

    local = feature_weights_dir() / "vgg16_imagenet_features.safetensors"
    path = local if local.is_file() else weights.hub_download("timm/vgg16.tv_in1k", "model.safetensors", None)
    return {k: v for k, v in load_file(Path(path)).items() if k.startswith("features.")}


def vgg16_features(last: int) -> nn.Sequential:
    """torchvision's vgg16().features up to index `last`, ImageNet weights, frozen."""
    convs = {index: width for index, width in VGG16_CONVS.values()}
    layers, cin = [], 3
    for index in range(last + 1):
        if index in convs:
            layers.append(nn.Conv2d(cin, convs[index], 3, padding=1))
            cin = convs[index]
        else:
            layers.append(nn.MaxPool2d(2) if index in _POOLS else nn.ReLU())
    features = nn.Sequential(*layers)
    features.load_state_dict({k.removeprefix("features."): v for k, v in vgg16_weights().items()
                              if int(k.split(".")[1]) <= last})
    return features.eval().requires_grad_(False)


class Perceptual(nn.Module):
    """MSE between VGG16 feature maps at a named layer (conv4_1, relu4_1, ...), frozen network."""

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def __init__(self, layer: str = "conv4_1"):
        super().__init__()
        self.features = vgg16_features(vgg16_last_index(layer))

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        normalise = lambda x: (x - self.mean.to(x)) / self.std.to(x)
        return F.mse_loss(self.features(normalise(image)), self.features(normalise(reference)))


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 with VGG16 (Zhang et al. 2018) as a loss: the mean distance of (N, 3, H, W) batches in [0, 1].

    Trained on, it is kept apart from the AlexNet LPIPS that measures (metrics.LPIPS), so that a
    checkpoint chosen on val LPIPS-Alex is not chosen by the loss it was trained on.
    """

    taps = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3

    def __init__(self):
        super().__init__()
        from safetensors.torch import load_file

        self.features = vgg16_features(self.taps[-1])
        linear = load_file(feature_weights_dir() / "lpips_v0.1_vgg_lin.safetensors")
        for i in range(len(self.taps)):
            self.register_buffer(f"linear{i}", linear[f"lin{i}.model.1.weight"])

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return lpips_activations(self.features, self.taps, x * 2 - 1)

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        distance = 0
        with torch.no_grad():
            targets = self._activations(reference)
        for i, (a, b) in enumerate(zip(self._activations(image), targets)):
            distance = distance + ((a - b) ** 2 * getattr(self, f"linear{i}")).sum(dim=1).mean()
        return distance


# ---- adversarial forms: (discriminator loss, generator loss) from logits ----


def discriminator_loss(form: str, real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    if form == "bce":  # one-sided label smoothing: real targets are `smoothing`, fake targets 0
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, smoothing))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if form == "logfree":  # hourglass paper: E[D(G)] - E[D(x)] on sigmoid outputs
        return torch.sigmoid(fake).mean() - torch.sigmoid(real).mean()
    if form == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown adversarial form {form!r} (bce, logfree, hinge)")


def generator_loss(form: str, fake: torch.Tensor) -> torch.Tensor:
    if form == "bce":  # -log D(G)
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if form == "logfree":  # E[1 - D(G)]
        return (1 - torch.sigmoid(fake)).mean()
    if form == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown adversarial form {form!r} (bce, logfree, hinge)")

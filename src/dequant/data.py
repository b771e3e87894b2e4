"""Training data: random crops of clean images, compressed on the fly with real libjpeg.

A batch is a pure function of (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would, without saving any RNG state.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dequant import jpeg
from dequant.images import IMAGE_SUFFIXES


def find_images(folders) -> list[Path]:
    """Every image file below the folders (recursive), sorted for reproducibility."""
    files = []
    for folder in map(Path, folders):
        if folder.is_file():
            files.append(folder)
        else:
            files += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files)


def load_rgb(files, min_size: int = 0) -> list[np.ndarray]:
    """Decode images to HxWx3 uint8 arrays, dropping any smaller than `min_size`."""
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return [im for im in images if min(im.shape[:2]) >= min_size]


@dataclass(frozen=True)
class Degradation:
    quality_min: int = 5
    quality_max: int = 95
    gray_fraction: float = 0.1  # share of crops compressed as one-channel JPEGs
    full_chroma_fraction: float = 0.15  # share compressed 4:4:4 instead of 4:2:0
    qualities: tuple = ()  # if given, qualities are drawn from this list instead of the range


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255


class JpegCrops(torch.utils.data.Dataset):
    """Item `step` is the whole batch for that step: (compressed, clean, quality).

    Each distributed rank draws its own crops; rank 0's are those of a single process.
    """

    def __init__(self, images, *, crop: int, batch: int, seed: int, degradation: Degradation, rank: int = 0):
        assert crop % 16 == 0, "crops start on the JPEG grid and cover whole 16x16 macroblocks"
        self.images, self.crop, self.batch, self.seed, self.deg = images, crop, batch, seed, degradation
        self.rank = rank

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, step] + ([self.rank] if self.rank else []))
        pairs = [self._sample(rng) for _ in range(self.batch)]
        compressed, clean, quality = zip(*pairs)
        return torch.stack(compressed), torch.stack(clean), torch.tensor(quality, dtype=torch.float32)

    def _sample(self, rng: np.random.Generator):
        image = self.images[rng.integers(len(self.images))]
        y = rng.integers(image.shape[0] - self.crop + 1)
        x = rng.integers(image.shape[1] - self.crop + 1)
        clean = np.rot90(image[y : y + self.crop, x : x + self.crop], k=rng.integers(4))
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        clean = np.ascontiguousarray(clean)
        if self.deg.qualities:
            quality = int(rng.choice(self.deg.qualities))
        else:
            quality = int(rng.integers(self.deg.quality_min, self.deg.quality_max + 1))
        gray = rng.random() < self.deg.gray_fraction
        subsampling = "4:4:4" if rng.random() < self.deg.full_chroma_fraction else "4:2:0"
        compressed = jpeg.degrade(Image.fromarray(clean), quality, subsampling, gray)
        if gray:  # a gray JPEG is restored as gray: the target is its luma, on all channels
            clean = np.asarray(Image.fromarray(clean).convert("L"))
        return to_tensor(_rgb(compressed)), to_tensor(_rgb(clean)), quality


def _rgb(image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels

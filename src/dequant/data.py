"""Training data: random crops of clean images, degraded on the fly (dequant.degradations) with real libjpeg.

A batch is a pure function of (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would, without saving any RNG state.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dequant import condition, degradations
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


def load_rgb(files) -> list[np.ndarray]:
    """Decode images to HxWx3 uint8 arrays."""
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def central(pixels: np.ndarray, side: int) -> np.ndarray:
    """The central side x side square of HxW(xC) pixels (all of a side no longer)."""
    top, left = (max(0, (length - side) // 2) for length in pixels.shape[:2])
    return np.ascontiguousarray(pixels[top : top + side, left : left + side])


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255


class JpegCrops(torch.utils.data.Dataset):
    """Item `step` is the whole batch for that step: (compressed, clean, condition, taught), the condition being
    what a generator whose contract names `condition_kind` is told about each file (dequant.condition), taught
    1 for the crops of pictures whose `taught` flag is set (those that learn from a teacher; all by default).

    Each distributed rank draws its own crops; rank 0's are those of a single process.
    """

    def __init__(self, images, *, crop: int, batch: int, seed: int, degradation: degradations.Degradation,
                 rank: int = 0, condition_kind: str = "quality", taught: list[bool] | None = None):
        assert crop % 16 == 0, "crops start on the JPEG grid and cover whole 16x16 macroblocks"
        self.images, self.crop, self.batch, self.seed, self.deg = images, crop, batch, seed, degradation
        self.rank, self.condition_kind = rank, condition_kind
        self.taught = [True] * len(images) if taught is None else taught

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, step] + ([self.rank] if self.rank else []))
        pairs = [self._sample(rng) for _ in range(self.batch)]
        compressed, clean, told, taught = zip(*pairs)
        return (torch.stack(compressed), torch.stack(clean), torch.tensor(np.array(told), dtype=torch.float32),
                torch.tensor(taught, dtype=torch.float32))

    def _sample(self, rng: np.random.Generator):
        index = rng.integers(len(self.images))
        recipe, clean = self.deg.sample(rng, self.images[index], self.crop)
        compressed, target, quality = degradations.apply(recipe, clean, self.crop)
        told = condition.of(self.condition_kind, quality, recipe.last.tables, recipe.gray, compressed)
        return to_tensor(compressed), to_tensor(target), told, float(self.taught[index])

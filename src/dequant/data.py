"""Training data: random crops of clean images, compressed on the fly with real libjpeg.

A batch is a pure function of (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would, without saving any RNG state.
"""

import math
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
class Compression:
    """One JPEG save: libjpeg's tables for `quality`, or another encoder's `tables` (luma, chroma)."""

    quality: int
    subsampling: str = "4:2:0"
    tables: tuple | None = None

    def luma_quality(self) -> int:
        """The quality a reader of the file sees: the IJG quality closest to its luma table."""
        return self.quality if self.tables is None else jpeg.quality_from_table(self.tables[0])

    def table_features(self, gray: bool = False) -> np.ndarray:
        """The file's tables as a generator conditioned on them sees them (jpeg.table_features)."""
        luma, chroma = self.tables or jpeg.ijg_tables(self.quality)
        return jpeg.table_features(luma, None if gray else chroma)


@dataclass(frozen=True)
class Recipe:
    """How a clean image became the JPEG a user has: saved once, or saved, resized and cropped
    (moving the 8x8 grid), and saved again. The file keeps only the last save's tables."""

    last: Compression
    first: Compression | None = None
    scale: float = 1.0  # resize between the two saves
    shift: tuple = (0, 0)  # rows and columns cropped off between the two saves
    gray: bool = False

    def source_side(self, crop: int) -> int:
        """Side of the clean region that still covers `crop` pixels after the resize and the shift."""
        return math.ceil((crop + max(self.shift)) / self.scale) if self.first else crop


def apply(recipe: Recipe, clean: np.ndarray, crop: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(JPEG input, clean target, the quality its file reads) for a clean HxWx3 uint8 image.

    The target goes through the same resize and crop as the JPEG, so only compression is undone.
    Without `crop` the whole image is kept (less the shift).
    """
    image = Image.fromarray(clean)
    if recipe.gray:  # a gray JPEG is restored as gray: the target is its luma
        image = image.convert("L")
    target = image
    if recipe.first:
        first = recipe.first
        image = jpeg.degrade(image, first.quality, first.subsampling, recipe.gray, first.tables)
        if recipe.scale != 1.0:
            size = tuple(round(side * recipe.scale) for side in image.size)
            image, target = (im.resize(size, Image.Resampling.BICUBIC) for im in (image, target))
        dy, dx = recipe.shift
        box = (dx, dy, dx + crop if crop else image.width, dy + crop if crop else image.height)
        image, target = image.crop(box), target.crop(box)
    elif crop:
        image, target = image.crop((0, 0, crop, crop)), target.crop((0, 0, crop, crop))
    last = recipe.last
    compressed = jpeg.degrade(image, last.quality, last.subsampling, recipe.gray, last.tables)
    return _rgb(compressed), _rgb(target), last.luma_quality()


# Non-IJG tables: mozjpeg's defaults, IJG's scaled off its quality curve, and IJG's jittered per entry.
TABLE_KINDS = ("mozjpeg", "scaled", "jitter")


def random_tables(rng: np.random.Generator, quality: int) -> tuple:
    return encoder_tables(TABLE_KINDS[rng.integers(len(TABLE_KINDS))], quality, rng)


def encoder_tables(kind: str, quality: int, rng: np.random.Generator) -> tuple:
    """(luma, chroma) tables of one of TABLE_KINDS at about `quality`."""
    if kind == "mozjpeg":
        return (jpeg.ijg_table(quality, jpeg.MOZJPEG),) * 2
    luma, chroma = jpeg.ijg_tables(quality)
    if kind == "scaled":  # each table its own strength, as Photoshop's and cameras' do
        factors = rng.uniform(0.7, 1.4, size=2)
        luma, chroma = luma * factors[0], chroma * factors[1]
    else:
        luma, chroma = luma * np.exp(rng.normal(0, 0.2, 64)), chroma * np.exp(rng.normal(0, 0.2, 64))
    return tuple(np.clip(np.round(t), 1, 255).astype(int) for t in (luma, chroma))


@dataclass(frozen=True)
class Degradation:
    quality_min: int = 5
    quality_max: int = 95
    gray_fraction: float = 0.1  # share of crops compressed as one-channel JPEGs
    full_chroma_fraction: float = 0.15  # share of saves at 4:4:4 instead of 4:2:0
    qualities: tuple = ()  # if given, qualities are drawn from this list instead of the range
    # The real-world kinds; each share 0 draws no random numbers, so older recipes replay exactly.
    half_chroma_fraction: float = 0.0  # share of saves at 4:2:2
    double_fraction: float = 0.0  # share of crops saved twice, each quality drawn independently
    shift_fraction: float = 0.0  # share of those whose second grid is shifted by 1-7 pixels on each axis
    resize_fraction: float = 0.0  # share of those resized between the saves (x0.5 to x1.25)
    table_fraction: float = 0.0  # share of saves with non-IJG tables (TABLE_KINDS)
    aligned_fraction: float = 0.0  # share of crops cut on the source's own 8x8 grid (see JpegCrops._sample)
    # Share of crops re-saved in place: cut on the source's 16x16 MCU grid, flipped but never turned, saved once
    # at 4:2:0 and resave_quality_min or above. A JPEG source (BSDS500's are quality 95, 4:2:0) saved so
    # comes back almost unchanged, and the generator must learn to leave it so (see JpegCrops._resave).
    resave_fraction: float = 0.0
    resave_quality_min: int = 85

    def quality(self, rng: np.random.Generator) -> int:
        if self.qualities:
            return int(rng.choice(self.qualities))
        return int(rng.integers(self.quality_min, self.quality_max + 1))

    def compression(self, rng: np.random.Generator, quality: int) -> Compression:
        subsampling = "4:4:4" if rng.random() < self.full_chroma_fraction else "4:2:0"
        if self.half_chroma_fraction and subsampling == "4:2:0" and rng.random() < self.half_chroma_fraction:
            subsampling = "4:2:2"
        tables = random_tables(rng, quality) if self.table_fraction and rng.random() < self.table_fraction else None
        return Compression(quality, subsampling, tables)

    def recipe(self, rng: np.random.Generator, crop: int, largest: int) -> Recipe:
        """A random recipe whose source region fits in `largest` pixels."""
        quality = self.quality(rng)
        gray = rng.random() < self.gray_fraction
        last = self.compression(rng, quality)
        if not (self.double_fraction and rng.random() < self.double_fraction):
            return Recipe(last, gray=gray)
        first = self.compression(rng, self.quality(rng))
        shift = tuple(rng.integers(1, 8, size=2).tolist()) if rng.random() < self.shift_fraction else (0, 0)
        if largest < crop + max(shift):
            shift = (0, 0)  # too small an image to shift within
        scale = 1.0
        if rng.random() < self.resize_fraction:
            scale = float(rng.uniform(max(0.5, (crop + 8) / (largest - 1)), 1.25))
        return Recipe(last, first, scale, shift, gray)


def validation_recipes(qualities, real_world: bool) -> list[tuple[str, Recipe]]:
    """(kind, recipe) for each val image: single saves at the val qualities, and with the real-world
    kinds on, fixed double saves (shifted, resized) and non-IJG tables, so checkpoint choice sees them."""
    recipes = [("single", Recipe(Compression(q))) for q in qualities]
    if real_world:
        rng = np.random.default_rng(0)
        recipes += [
            ("double", Recipe(Compression(30), Compression(10), shift=(4, 4))),
            ("double", Recipe(Compression(60), Compression(30), shift=(2, 5))),
            ("double", Recipe(Compression(75), Compression(20), scale=0.8)),
            ("tables", Recipe(Compression(30, tables=encoder_tables("mozjpeg", 30, rng)))),
            ("tables", Recipe(Compression(30, tables=encoder_tables("jitter", 30, rng)))),
        ]
    return recipes


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255


class JpegCrops(torch.utils.data.Dataset):
    """Item `step` is the whole batch for that step: (compressed, clean, condition), the condition being
    the quality each file reads, or with `tables` its tables' features (B x 128).

    Each distributed rank draws its own crops; rank 0's are those of a single process.
    """

    def __init__(self, images, *, crop: int, batch: int, seed: int, degradation: Degradation, rank: int = 0,
                 tables: bool = False):
        assert crop % 16 == 0, "crops start on the JPEG grid and cover whole 16x16 macroblocks"
        self.images, self.crop, self.batch, self.seed, self.deg = images, crop, batch, seed, degradation
        self.rank, self.tables = rank, tables

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, step] + ([self.rank] if self.rank else []))
        pairs = [self._sample(rng) for _ in range(self.batch)]
        compressed, clean, condition = zip(*pairs)
        return torch.stack(compressed), torch.stack(clean), torch.tensor(np.array(condition), dtype=torch.float32)

    def _sample(self, rng: np.random.Generator):
        image = self.images[rng.integers(len(self.images))]
        if self.deg.resave_fraction and rng.random() < self.deg.resave_fraction:
            return self._resave(rng, image)
        double_kinds = self.deg.double_fraction > 0
        # Older recipes drew the region before the degradation; keep that order when they are all there is.
        recipe = self.deg.recipe(rng, self.crop, min(image.shape[:2])) if double_kinds else None
        side = recipe.source_side(self.crop) if recipe else self.crop
        # Sources that are JPEGs themselves (BSDS500's are quality 95) re-saved on their own grid change
        # little; aligned crops teach the generator to leave such a re-save alone. (Turned, and on the
        # 8-pixel grid where chroma's is 16, they are not quite in place: resave_fraction's are.)
        step = 8 if self.deg.aligned_fraction and rng.random() < self.deg.aligned_fraction else 1
        y, x = grid_origin(rng, image, side, step)
        clean = np.rot90(image[y : y + side, x : x + side], k=rng.integers(4))
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        recipe = recipe or self.deg.recipe(rng, self.crop, side)
        return self._pair(recipe, np.ascontiguousarray(clean))

    def _resave(self, rng: np.random.Generator, image: np.ndarray):
        """A crop saved again on its source's own grid. Flips keep a JPEG's coefficients on their
        quantization steps (only signs change), a quarter turn would transpose them against the table."""
        y, x = grid_origin(rng, image, self.crop, 16)
        clean = image[y : y + self.crop, x : x + self.crop]
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        if rng.random() < 0.5:
            clean = clean[::-1]
        quality = int(rng.integers(self.deg.resave_quality_min, self.deg.quality_max + 1))
        return self._pair(Recipe(Compression(quality)), np.ascontiguousarray(clean))

    def _pair(self, recipe: Recipe, clean: np.ndarray):
        compressed, target, quality = apply(recipe, clean, self.crop)
        condition = recipe.last.table_features(recipe.gray) if self.tables else quality
        return to_tensor(compressed), to_tensor(target), condition


def grid_origin(rng: np.random.Generator, image: np.ndarray, side: int, step: int) -> tuple[int, int]:
    """Top-left corner (y, x) of a random side x side region starting on the `step`-pixel grid."""
    return tuple(step * int(rng.integers((length - side) // step + 1)) for length in image.shape[:2])


def _rgb(image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels

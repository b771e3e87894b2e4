"""The degradation model: how a clean picture becomes the JPEG a user has.

A `Recipe` is one picture's history (saved once, or saved, resized, cropped and saved again, with libjpeg's
or another encoder's tables); `apply` carries it out with real libjpeg. A `Degradation` draws recipes and
crops at random for training; `validation_recipes` are the fixed ones checkpoints are chosen on.

Adding a degradation: its share as a field of `Degradation` (0 by default, drawing no random numbers, so
recorded runs replay), the draw in `recipe` or `sample`, and what it does to the picture in `apply`. Configs
name the field as a flat key (configs/real-world.toml); TrainConfig reads every field from here.
"""

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dequant import jpeg


@dataclass(frozen=True)
class Compression:
    """One JPEG save: libjpeg's tables for `quality`, or another encoder's `tables` (luma, chroma)."""

    quality: int
    subsampling: str = "4:2:0"
    tables: tuple | None = None

    def luma_quality(self) -> int:
        """The quality a reader of the file sees: the IJG quality closest to its luma table."""
        return self.quality if self.tables is None else jpeg.quality_from_table(self.tables[0])


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


def save(recipe: Recipe, clean: np.ndarray, crop: int | None = None) -> tuple[bytes, np.ndarray, int]:
    """(the JPEG file, clean target, the quality its file reads) for a clean HxWx3 uint8 image.

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
    return jpeg.encode(image, last.quality, last.subsampling, recipe.gray, last.tables), rgb(target), last.luma_quality()


def apply(recipe: Recipe, clean: np.ndarray, crop: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(JPEG input decoded, clean target, the quality its file reads): `save`, decoded."""
    payload, target, quality = save(recipe, clean, crop)
    return rgb(Image.open(io.BytesIO(payload))), target, quality


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
    """The random degradation of training crops. Configs name its fields as flat keys (configs/real-world.toml)."""

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
    aligned_fraction: float = 0.0  # share of crops cut on the source's own 8x8 grid (see `sample`)
    # Share of crops re-saved in place: cut on the source's 16x16 MCU grid, flipped but never turned, saved once
    # at 4:2:0 and resave_quality_min or above. A JPEG source (BSDS500's are quality 95, 4:2:0) saved so
    # comes back almost unchanged, and the generator must learn to leave it so (see `resaved`).
    resave_fraction: float = 0.0
    resave_quality_min: int = 85

    @property
    def real_world(self) -> bool:
        """Whether the crops include the real-world kinds (validation then scores them too)."""
        return self.double_fraction > 0 or self.table_fraction > 0

    def sample(self, rng: np.random.Generator, image: np.ndarray, crop: int) -> tuple[Recipe, np.ndarray]:
        """(recipe, clean crop source) for one training crop of `crop` pixels from the HxWx3 `image`."""
        if self.resave_fraction and rng.random() < self.resave_fraction:
            return self.resaved(rng, image, crop)
        double_kinds = self.double_fraction > 0
        # Older recipes drew the region before the degradation; keep that order when they are all there is.
        recipe = self.recipe(rng, crop, min(image.shape[:2])) if double_kinds else None
        side = recipe.source_side(crop) if recipe else crop
        # Sources that are JPEGs themselves (BSDS500's are quality 95) re-saved on their own grid change
        # little; aligned crops teach the generator to leave such a re-save alone. (Turned, and on the
        # 8-pixel grid where chroma's is 16, they are not quite in place: resave_fraction's are.)
        step = 8 if self.aligned_fraction and rng.random() < self.aligned_fraction else 1
        y, x = grid_origin(rng, image, side, step)
        clean = np.rot90(image[y : y + side, x : x + side], k=rng.integers(4))
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        recipe = recipe or self.recipe(rng, crop, side)
        return recipe, np.ascontiguousarray(clean)

    def resaved(self, rng: np.random.Generator, image: np.ndarray, crop: int) -> tuple[Recipe, np.ndarray]:
        """A crop saved again on its source's own grid. Flips keep a JPEG's coefficients on their
        quantization steps (only signs change), a quarter turn would transpose them against the table."""
        y, x = grid_origin(rng, image, crop, 16)
        clean = image[y : y + crop, x : x + crop]
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        if rng.random() < 0.5:
            clean = clean[::-1]
        quality = int(rng.integers(self.resave_quality_min, self.quality_max + 1))
        return Recipe(Compression(quality)), np.ascontiguousarray(clean)

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


def grid_origin(rng: np.random.Generator, image: np.ndarray, side: int, step: int) -> tuple[int, int]:
    """Top-left corner (y, x) of a random side x side region starting on the `step`-pixel grid."""
    return tuple(step * int(rng.integers((length - side) // step + 1)) for length in image.shape[:2])


def rgb(image) -> np.ndarray:
    """A Pillow image or HxW(xC) array as HxWx3 uint8 (gray repeated)."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels

"""Real-world degradations: double saves on shifted grids, resizes, other encoders' tables, chroma layouts."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, JpegImagePlugin

from conftest import photo
from dequant import condition, data, degradations, jpeg
from dequant.degradations import Compression, Recipe

CLEAN = np.asarray(photo(96, 112, seed=4))


def quantization(pixels_or_bytes) -> dict:
    return Image.open(io.BytesIO(pixels_or_bytes)).quantization


def test_single_save_crops_the_corner_and_reads_its_quality():
    compressed, target, quality = degradations.apply(Recipe(Compression(30)), CLEAN, crop=48)
    assert compressed.shape == target.shape == (48, 48, 3) and quality == 30
    assert np.array_equal(target, CLEAN[:48, :48])
    assert not np.array_equal(compressed, target)


def test_double_save_moves_the_grid_with_the_target():
    recipe = Recipe(Compression(50), Compression(10), shift=(3, 5))
    compressed, target, quality = degradations.apply(recipe, CLEAN, crop=48)
    assert np.array_equal(target, CLEAN[3:51, 5:53]) and quality == 50
    # Saved at 10, cropped 3 rows and 5 columns (the old grid now starts at row 5, column 3), saved at 50.
    once = Image.open(io.BytesIO(jpeg.encode(Image.fromarray(CLEAN), 10))).crop((5, 3, 53, 51))
    assert np.array_equal(compressed, np.asarray(Image.open(io.BytesIO(jpeg.encode(once, 50)))))
    assert not np.array_equal(compressed, degradations.apply(Recipe(Compression(50), Compression(10)), CLEAN, crop=48)[0])
    whole, whole_target, _ = degradations.apply(recipe, CLEAN)  # no crop: everything after the shift
    assert whole.shape == whole_target.shape == (93, 107, 3)


def test_resize_between_saves_resizes_the_target_too():
    recipe = Recipe(Compression(60), Compression(20), scale=0.75)
    compressed, target, _ = degradations.apply(recipe, CLEAN)
    assert compressed.shape == target.shape == (72, 84, 3)
    expected = np.asarray(Image.fromarray(CLEAN).resize((84, 72), Image.Resampling.BICUBIC))
    assert np.array_equal(target, expected)


def test_gray_recipe_targets_luma_on_every_channel():
    compressed, target, _ = degradations.apply(Recipe(Compression(20), Compression(40), shift=(1, 1), gray=True), CLEAN, 32)
    for image in (compressed, target):
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize("kind", degradations.TABLE_KINDS)
def test_other_encoders_tables_are_written_and_read_back(kind):
    tables = degradations.encoder_tables(kind, 40, np.random.default_rng(1))
    written = jpeg.encode(Image.fromarray(CLEAN), 40, tables=tables)
    read = quantization(written)
    assert read[0] == list(tables[0]) and read[1] == list(tables[1])
    assert abs(Compression(40, tables=tables).luma_quality() - 40) <= 15  # similar strength, other shape
    if kind == "mozjpeg":
        assert read[0] == read[1] and read[0] != list(jpeg.ijg_table(40))


@pytest.mark.parametrize("subsampling, factors", [("4:4:4", (1, 1)), ("4:2:2", (2, 1)), ("4:2:0", (2, 2))])
def test_chroma_layouts(subsampling, factors):
    image = Image.open(io.BytesIO(jpeg.encode(Image.fromarray(CLEAN), 50, subsampling)))
    assert image.layer[0][1:3] == factors
    assert JpegImagePlugin.get_sampling(image) == jpeg.SUBSAMPLING[subsampling]


REAL_WORLD = degradations.Degradation(double_fraction=0.5, shift_fraction=0.75, resize_fraction=0.5, table_fraction=0.5,
                              half_chroma_fraction=0.3)


def test_batches_are_a_function_of_seed_and_step():
    images = [CLEAN, np.asarray(photo(128, 96, seed=9))]
    crops = data.JpegCrops(images, crop=48, batch=12, seed=5, degradation=REAL_WORLD)
    first, again = crops[3], crops[3]
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    compressed, clean, quality, taught = first
    assert compressed.shape == clean.shape == (12, 3, 48, 48) and quality.shape == (12,)
    assert taught.tolist() == [1.0] * 12  # every crop learns from a teacher unless told otherwise
    assert not torch.equal(crops[4][0], compressed)
    other_seed = data.JpegCrops(images, crop=48, batch=12, seed=6, degradation=REAL_WORLD)[3][0]
    assert not torch.equal(other_seed, compressed)


def test_recipes_draw_every_kind_at_their_shares():
    rng = np.random.default_rng(0)
    recipes = [REAL_WORLD.recipe(rng, 48, 96) for _ in range(400)]
    doubles = [r for r in recipes if r.first]
    assert 150 < len(doubles) < 250
    assert 0.6 < np.mean([r.shift != (0, 0) for r in doubles]) < 0.9
    assert 0.35 < np.mean([r.scale != 1.0 for r in doubles]) < 0.65
    assert all(r.source_side(48) <= 96 for r in recipes)
    assert 0.4 < np.mean([r.last.tables is not None for r in recipes]) < 0.6
    assert {r.last.subsampling for r in recipes} == {"4:2:0", "4:2:2", "4:4:4"}


def test_shares_at_zero_draw_single_libjpeg_saves():
    rng = np.random.default_rng(0)
    recipes = [degradations.Degradation().recipe(rng, 48, 96) for _ in range(100)]
    assert all(r.first is None and r.last.tables is None and r.last.subsampling != "4:2:2" for r in recipes)


def test_validation_recipes_cover_the_real_world_kinds_when_training_on_them():
    assert {kind for kind, _ in degradations.validation_recipes((10, 30), real_world=False)} == {"single"}
    kinds = [kind for kind, _ in degradations.validation_recipes((10, 30), real_world=True)]
    assert kinds.count("single") == 2 and "double" in kinds and "tables" in kinds


def test_table_features_are_what_the_file_stores():
    """A table-conditioned generator is told the tables the file holds, as Pillow reads them back."""
    tables = degradations.encoder_tables("jitter", 30, np.random.default_rng(1))
    compression = Compression(30, tables=tables)
    stored = quantization(jpeg.encode(Image.fromarray(CLEAN), 30, tables=tables))
    features = condition.of("tables", compression.luma_quality(), compression.tables, gray=False)
    assert features.shape == (128,) and features.dtype == np.float32 and 0 <= features.min() <= features.max() <= 1
    assert np.allclose(features, jpeg.table_features(stored[0], stored[1]))
    ijg = condition.of("tables", 30, None, gray=False)
    assert np.allclose(ijg, jpeg.table_features(*quantization(jpeg.encode(Image.fromarray(CLEAN), 30)).values()))
    gray = condition.of("tables", 30, None, gray=True)
    assert np.array_equal(gray[:64], gray[64:])  # a gray file has one table: it stands for both


def test_crops_carry_the_tables_when_asked():
    deg = degradations.Degradation(double_fraction=0.5, table_fraction=0.5)
    kwargs = dict(crop=32, batch=4, seed=3, degradation=deg)
    images = [CLEAN]
    compressed, clean, tables, _ = data.JpegCrops(images, condition_kind="tables", **kwargs)[5]
    _, _, quality, _ = data.JpegCrops(images, **kwargs)[5]
    assert tables.shape == (4, 128) and quality.shape == (4,)
    assert torch.equal(compressed, data.JpegCrops(images, **kwargs)[5][0])  # the same crops either way
    # The luma half of the features reads back the quality the scalar carries.
    for features, q in zip(tables.numpy(), quality.tolist()):
        steps = np.rint(np.exp(features[:64] * np.log(255)))
        assert jpeg.quality_from_table(steps) == q


def test_resaves_of_a_jpeg_source_come_back_almost_unchanged():
    """A quality-95 4:2:0 source cut on its MCU grid and flipped, saved again at 95: close to lossless, while
    a crop off the grid at the same quality is not (the case resave_fraction teaches)."""
    smooth = Image.fromarray(CLEAN).filter(ImageFilter.GaussianBlur(1.5))  # a photo's detail, not the test one's noise
    source = np.asarray(Image.open(io.BytesIO(jpeg.encode(smooth, 95))).convert("RGB"))
    deg = degradations.Degradation(resave_fraction=1.0, resave_quality_min=95)
    crops = data.JpegCrops([source], crop=48, batch=8, seed=1, degradation=deg)
    compressed, clean, quality, _ = crops[2]
    assert compressed.shape == clean.shape == (8, 3, 48, 48) and set(quality.tolist()) == {95.0}
    assert all(torch.equal(a, b) for a, b in zip(crops[2], data.JpegCrops([source], crop=48, batch=8, seed=1,
                                                                            degradation=deg)[2]))
    in_place = 10 * np.log10(1 / torch.mean((compressed - clean) ** 2).item())
    off_grid = source[3:51, 5:53]
    moved = np.asarray(Image.open(io.BytesIO(jpeg.encode(Image.fromarray(off_grid), 95))).convert("RGB"))
    shifted = 10 * np.log10(255**2 / np.mean((moved.astype(float) - off_grid) ** 2))
    assert in_place > shifted + 2, (in_place, shifted)


def test_resave_share_at_zero_draws_nothing():
    """Recipes recorded before resave_fraction existed replay exactly."""
    crops = data.JpegCrops([CLEAN], crop=48, batch=4, seed=2, degradation=REAL_WORLD)[1]
    same = data.JpegCrops([CLEAN], crop=48, batch=4, seed=2,
                          degradation=degradations.Degradation(**{**REAL_WORLD.__dict__, "resave_quality_min": 90}))[1]
    assert all(torch.equal(a, b) for a, b in zip(crops, same))

"""Tiles follow the JPEG grid and stitch to the whole-image result."""

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes, photo
from dequant import images, loading, registry
from dequant.restorer import Restorer, Settings
from dequant.tiling import GRID, spans


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 16), (333, 128, 48), (64, 128, 16), (257, 16, 0)])
def test_spans_cover_once_on_the_grid(length, tile, overlap):
    covered = np.zeros(length, int)
    for start, end, core_start, core_end in spans(length, tile, overlap):
        assert start % GRID == 0 and core_start % GRID == 0 and start <= core_start < core_end <= end
        covered[core_start:core_end] += 1
    assert (covered == 1).all()


@pytest.fixture(scope="module")
def default_model():
    return loading.load_model(None, registry.load())[0]


@pytest.mark.parametrize("height,width", [(203, 333), (130, 257), (96, 520)])
def test_tiled_equals_whole_image(default_model, height, width):
    picture = images.read(jpeg_bytes(photo(height, width, seed=height), quality=10))
    whole = Restorer(default_model, Settings(device="cpu", tile=0))(picture)
    tiled = Restorer(default_model, Settings(device="cpu", tile=128))(picture)
    to8 = lambda p: np.round(p.pixels * 255).astype(int)
    assert np.abs(to8(whole) - to8(tiled)).max() <= 1
    assert whole.pixels.shape == picture.pixels.shape


def test_the_default_int8_twin_tiled_equals_whole_image():
    picture = images.read(jpeg_bytes(photo(203, 333, seed=5), quality=10))
    whole = Restorer(None, Settings(device="cpu", tile=0, precision="int8"))(picture)
    tiled = Restorer(None, Settings(device="cpu", tile=128, precision="int8"))(picture)
    to8 = lambda p: np.round(p.pixels * 255).astype(int)
    assert np.abs(to8(whole) - to8(tiled)).max() <= 1
    assert whole.pixels.shape == picture.pixels.shape

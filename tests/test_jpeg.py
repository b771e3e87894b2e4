"""JPEG facts: quality from the tables and from the pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import photo
from dequant import jpeg


@pytest.mark.parametrize("quality", range(1, 101))
def test_quality_read_from_tables(quality):
    data = jpeg.encode(photo(32, 32), quality)
    assert jpeg.file_quality(Image.open(io.BytesIO(data))) == quality


@pytest.mark.parametrize("quality", [10, 20, 30, 50, 70])
def test_blind_quality_from_pixels(quality):
    decoded = jpeg.degrade(photo(256, 256, seed=quality), quality)
    assert abs(jpeg.blind_quality(np.asarray(decoded)) - quality) <= 2


def test_blind_quality_finds_a_shifted_grid():
    decoded = np.asarray(jpeg.degrade(photo(256, 256), 20))[3:, 5:]
    assert abs(jpeg.blind_quality(decoded) - 20) <= 2

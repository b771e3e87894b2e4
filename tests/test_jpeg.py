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


def test_a_flat_picture_has_no_measurable_lattice():
    flat = np.full((64, 64, 3), 120, np.uint8)
    assert jpeg.lattice_quality(flat) is None and jpeg.blind_quality(flat) == 75


@pytest.mark.parametrize("first,harsh", [(None, False), (95, False), (30, True), (75, True)])
def test_a_harsh_save_before_a_quality_95_one_shows_in_the_pixels(first, harsh):
    image = photo(256, 256)
    if first is not None:  # saved once at `first`, then again at 95 on a grid shifted by 3,5
        image = Image.fromarray(np.asarray(jpeg.degrade(image, first))[3:, 5:])
    assert jpeg.shows_harsh_save(np.asarray(jpeg.degrade(image, 95))) is harsh
    assert not jpeg.shows_harsh_save(np.full((64, 64, 3), 120, np.uint8))  # flat: no trace to find

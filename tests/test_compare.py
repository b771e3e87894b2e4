"""dequant compare: labelled before/after panels."""

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, jpeg_bytes, photo
from dequant import compare

PANEL = 3 * 32  # zoom 3 of a 32-pixel crop
LABEL = compare.LABEL_HEIGHT


@pytest.fixture
def pair(tmp_path):
    clean = photo(72, 96, seed=3)
    clean.save(tmp_path / "clean.png")
    (tmp_path / "in.jpg").write_bytes(jpeg_bytes(clean, 10))
    return tmp_path / "in.jpg", tmp_path / "clean.png"


def panels_in(figure: Image.Image) -> int:
    """Count panels by the white gaps between them in the picture row."""
    row = np.asarray(figure.convert("RGB"))[LABEL + 5]
    white = np.all(row == 255, axis=1)
    return 1 + int(np.sum(white[1:] & ~white[:-1]))


def test_one_model_without_reference(cli, pair, tmp_path):
    source, _ = pair
    code, _, err = cli("compare", source, "-o", tmp_path / "fig.png", "--size", "32")
    assert code == 0, err
    figure = Image.open(tmp_path / "fig.png")
    assert figure.size == (2 * PANEL + compare.GAP, LABEL + PANEL) and panels_in(figure) == 2
    assert "2 panels" in err
    label = np.asarray(figure.convert("L"))[:LABEL, :PANEL]
    assert (label < 128).sum() > 50, "the panel's label is drawn"


def test_several_models_with_reference_and_scores(cli, pair, tmp_path):
    source, clean = pair
    code, _, err = cli("compare", source, "-o", tmp_path / "fig.png", "--model", "dequant-base", "--model", "arcnn-plus",
                       "--reference", clean, "--crop", "8,16,32,32", "--lpips-weights", SHARED / "weights")
    assert code == 0, err
    figure = Image.open(tmp_path / "fig.png")
    assert figure.size == (4 * PANEL + 3 * compare.GAP, LABEL + PANEL) and panels_in(figure) == 4
    assert "crop 8,16,32,32" in err
    # The reference panel is the clean crop, enlarged by nearest neighbour.
    reference_panel = np.asarray(figure.convert("RGB"))[LABEL:, 3 * (PANEL + compare.GAP):]
    expected = np.asarray(Image.open(clean).convert("RGB"))[16:48, 8:40].repeat(3, 0).repeat(3, 1)
    assert np.array_equal(reference_panel, expected)


def test_figure_scores_each_panel_against_the_reference():
    clean = np.asarray(photo(48, 64))
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    before = compare.Panel("JPEG", noisy)
    restored = [compare.Panel("model", np.clip(clean.astype(int) + 1, 0, 255).astype(np.uint8))]
    _, crop = compare.figure(before, restored, reference=clean, crop=None, size=16, zoom=2)
    assert before.scores.endswith(" dB") and restored[0].scores.endswith(" dB")
    assert float(before.scores.split()[0]) < 35 < float(restored[0].scores.split()[0])
    assert crop[2:] == (16, 16)


def test_automatic_crop_finds_where_the_models_change_the_input_on_the_grid():
    before = np.zeros((64, 96, 3), np.uint8)
    after = before.copy()
    after[40:56, 50:66] = 200  # the only change
    x, y = compare.busiest_window(before, [after], 16, 16)
    assert (x % 8, y % 8) == (0, 0) and (x, y) == (48, 40)


def test_bad_crop_and_mismatched_reference_are_usage_errors(cli, pair, tmp_path):
    source, _ = pair
    for crop in ("1,2,3", "90,0,32,32", "a,b,c,d"):
        code, _, err = cli("compare", source, "-o", tmp_path / "f.png", "--crop", crop)
        assert code == 2 and "--crop" in err, (crop, err)
    photo(40, 40).save(tmp_path / "small.png")
    code, _, err = cli("compare", source, "-o", tmp_path / "f.png", "--reference", tmp_path / "small.png")
    assert code == 2 and "size" in err
    code, _, err = cli("compare", source, "-o", tmp_path / "f.jpg")
    assert code == 2 and "PNG" in err

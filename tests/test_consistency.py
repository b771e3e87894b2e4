"""File-consistent output: restorations stay inside the quantization cells of the file's coefficients."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import jpeg_bytes, photo
from dequant import archs, consistency, images
from dequant.restorer import Restorer, Settings

SAVES = {  # Pillow's options for each kind of file
    "4:4:4": dict(subsampling=0),
    "4:2:2": dict(subsampling=1),
    "4:2:0": dict(subsampling=2),
    "progressive 4:2:0": dict(subsampling=2, progressive=True),
    "restart markers": dict(subsampling=2, restart_marker_blocks=3),
    "gray": dict(),
}


def made_up_jpeg(kind: str, quality: int = 30, height: int = 45, width: int = 61) -> bytes:
    """An odd-sized picture away from black and white (no clipping), saved as `kind`."""
    image = Image.fromarray((np.asarray(photo(height, width, seed=3), dtype=np.float32) * 0.6 + 50).astype(np.uint8))
    buffer = io.BytesIO()
    (image.convert("L") if kind == "gray" else image).save(buffer, "JPEG", quality=quality, **SAVES[kind])
    return buffer.getvalue()


def scrambler() -> torch.nn.Module:
    """A tiny generator far from the identity: its output leaves the cells unless they are kept."""
    torch.manual_seed(1)
    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.03)
    return model


def cell_positions(pixels: np.ndarray, coefficients: consistency.Coefficients) -> list[np.ndarray]:
    """Per component, where the output's DCT coefficients fall: (coefficient / step) - the file's c, which a
    file-consistent output keeps within [-1/2, 1/2]. Blocks that reach past the picture's edge are left out:
    the encoder filled them with copies of the edge pixels, and the output's own edge need not be those."""
    scaled = pixels.astype(np.float64) * 255
    planes = scaled[..., :1] if len(coefficients.blocks) == 1 else scaled @ consistency.TO_YCBCR.T + consistency.OFFSET
    out = []
    for k, blocks in enumerate(coefficients.blocks):
        rows, columns = blocks.shape[:2]
        fy, fx = coefficients.factors[k]
        padded = np.pad(planes[..., k], ((0, rows * 8 * fy - planes.shape[0]), (0, columns * 8 * fx - planes.shape[1])),
                        mode="edge")
        coded = padded.reshape(rows * 8, fy, columns * 8, fx).mean(axis=(1, 3)) - 128
        tiles = coded.reshape(rows, 8, columns, 8).transpose(0, 2, 1, 3)
        whole = (pixels.shape[0] // (8 * fy), pixels.shape[1] // (8 * fx))
        out.append(((consistency.DCT @ tiles @ consistency.DCT.T) / coefficients.steps[k] - blocks)[: whole[0], : whole[1]])
    return out


@pytest.mark.parametrize("kind", list(SAVES))
def test_the_output_lies_in_the_files_cells(kind):
    payload = made_up_jpeg(kind)
    coefficients = consistency.read(payload)
    expected = {"4:4:4": (1, 1), "4:2:2": (1, 2), "gray": None}.get(kind, (2, 2))
    assert coefficients.factors[-1] == (expected or (1, 1)) and len(coefficients.blocks) == (1 if kind == "gray" else 3)
    picture = images.read(payload)
    free = Restorer(scrambler(), Settings(device="cpu", tile=0, backend="torch", consistent=False))(picture).pixels
    kept = Restorer(scrambler(), Settings(device="cpu", tile=0, backend="torch"))(picture).pixels
    assert max(np.abs(p).max() for p in cell_positions(free, coefficients)) > 1  # it moved out of the cells ...
    for position in cell_positions(kept, coefficients):  # ... and is kept in them, to float rounding
        assert np.abs(position).max() <= 0.5 + 1e-3
    # Written as 8 bits, the rounding moves each coefficient by a fraction of its step at most.
    rounded = np.round(kept * 255) / 255
    assert all(np.abs(p).max() <= 0.5 + 4 / coefficients.steps[k].min()
               for k, p in enumerate(cell_positions(rounded, coefficients)))


def test_keeping_to_the_cells_brings_a_blurred_picture_back_towards_the_original():
    clean = np.asarray(photo(64, 80, seed=5), dtype=np.float32) / 255
    buffer = io.BytesIO()
    Image.fromarray((clean * 255).astype(np.uint8)).save(buffer, "JPEG", quality=50)
    coefficients = consistency.read(buffer.getvalue())
    blurred = np.asarray(Image.fromarray((clean * 255).astype(np.uint8)).resize((20, 16)).resize((80, 64)),
                         dtype=np.float32) / 255
    assert np.abs(consistency.project(clean, coefficients) - clean).max() < 2 / 255  # the original is in its cells
    error = lambda pixels: float(np.mean((pixels - clean) ** 2))  # noqa: E731
    assert error(consistency.project(blurred, coefficients)) < 0.95 * error(blurred)


def without_huffman_tables(payload: bytes) -> bytes:
    """The JPEG with its DHT segments left out, as Motion-JPEG frames are stored: libjpeg-turbo (Pillow) decodes
    them with the standard tables, the libjpeg that reads coefficients refuses them."""
    out, at = bytearray(payload[:2]), 2
    while payload[at + 1] != 0xDA:  # up to the start of scan
        length = int.from_bytes(payload[at + 2 : at + 4], "big")
        if payload[at + 1] != 0xC4:
            out += payload[at : at + 2 + length]
        at += 2 + length
    return bytes(out + payload[at:])


def test_a_jpeg_whose_coefficients_cannot_be_read_is_restored_and_named_once(cli, tmp_path):
    source = tmp_path / "frame.jpg"
    source.write_bytes(without_huffman_tables(made_up_jpeg("4:2:0")))
    assert Image.open(source).convert("RGB").size == (61, 45)
    with pytest.raises(consistency.CoefficientsError, match="Huffman table"):
        consistency.read(source)
    code, _, err = cli("restore", source, "-o", tmp_path / "out.png", "--model", "dequant-base")
    assert code == 0 and (tmp_path / "out.png").is_file()
    said = [line for line in err.splitlines() if "quantization cells" in line]
    assert len(said) == 1 and str(source) in said[0] and "Huffman table" in said[0], err


def test_verbose_says_what_was_kept(cli, tmp_path):
    (tmp_path / "a.jpg").write_bytes(made_up_jpeg("4:2:0"))
    Image.open(tmp_path / "a.jpg").save(tmp_path / "b.png")
    code, _, err = cli("restore", tmp_path / "a.jpg", tmp_path / "b.png", "-o", tmp_path / "out", "-v",
                       "--model", "dequant-base")
    assert code == 0, err
    assert "a.jpg: quality read 30" in err and "kept in the file's cells" in err
    assert "b.png: " in err and "no coefficients (not a JPEG file)" in err


def test_uniform_areas_come_back_as_decoded_and_the_rest_as_restored():
    decoded = np.zeros((32, 64, 3), np.float32)
    decoded[:, :32] = [0.2, 0.4, 0.6]  # blocks 0-3 of each row: one colour
    decoded[:, 32:40] = [0.2, 0.4, 0.61]  # block 4: another colour, within reach of blocks 1-3
    decoded[:, 40:] = np.random.default_rng(0).random((32, 24, 3))  # texture
    restored = np.clip(decoded + 0.05, 0, 1)
    kept = consistency.keep_uniform_areas(decoded, restored)
    as_decoded = (kept == decoded).all(axis=-1)[::8, ::8]
    assert as_decoded[:, 0].all()  # amid its own colour (the picture's edge counts as more of it)
    assert not as_decoded[:, 1:].any()  # another colour within reach, or not one colour: as the network made it
    assert np.array_equal(kept[:, 8:], restored[:, 8:])
    assert (consistency.keep_uniform_areas(decoded, restored, reach=1) == decoded).all(axis=-1)[::8, ::8][:, :3].all()


def test_a_one_colour_jpeg_comes_back_as_decoded():
    buffer = io.BytesIO()
    Image.new("RGB", (61, 45), (131, 92, 60)).save(buffer, "JPEG", quality=20)
    picture = images.read(buffer.getvalue())
    restored = Restorer(scrambler(), Settings(device="cpu", tile=0, backend="torch"))(picture).pixels
    # Kept in the cells afterwards, a 4:2:0 macroblock (16 pixels) that reaches past the whole blocks may move.
    whole = (45 // 16 * 16, 61 // 16 * 16)
    assert np.abs(restored - picture.pixels)[: whole[0], : whole[1]].max() < 1e-6


def saved_twice(gray: bool, first: int = 10, last: int = 50, shift: int = 4) -> bytes:
    """A picture saved at `first`, cropped by `shift` pixels each way (its grid moves), then saved at `last`."""
    image = photo(96, 128, seed=1).convert("L" if gray else "RGB")
    once = Image.open(io.BytesIO(jpeg_bytes(image, first)))
    return jpeg_bytes(once.crop((shift, shift, once.width, once.height)), last)


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("shift", [4, 0])
def test_an_earlier_harsher_save_is_found_and_a_single_save_shows_none(gray, shift):
    twice, once = saved_twice(gray, shift=shift), jpeg_bytes(photo(96, 128, seed=1).convert("L" if gray else "RGB"), 50)
    found = [consistency.saved_harsher_before(images.read(p).pixels, consistency.read(p)) for p in (twice, once)]
    assert found == [True, False]
    milder_before = saved_twice(gray, first=50, last=10, shift=shift)
    assert not consistency.saved_harsher_before(images.read(milder_before).pixels, consistency.read(milder_before))


def test_cells_are_not_kept_where_an_earlier_harsher_save_shows():
    payload = saved_twice(gray=False)
    picture, coefficients = images.read(payload), consistency.read(payload)
    moved = np.clip(picture.pixels + np.random.default_rng(0).normal(0, 0.05, picture.pixels.shape), 0, 1).astype(np.float32)
    kept, said = consistency.keep(picture.pixels, moved, coefficients)
    assert "earlier, harsher save" in said and np.array_equal(kept, consistency.keep_uniform_areas(picture.pixels, moved))
    single = made_up_jpeg("4:2:0", quality=50)
    _, said = consistency.keep(images.read(single).pixels, images.read(single).pixels, consistency.read(single))
    assert said == "kept in the file's cells"

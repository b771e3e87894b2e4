"""Metadata, alpha and colour modes survive a restore; odd inputs are handled or refused clearly."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import jpeg_bytes, photo

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def restore_bytes(cli, tmp_path, data: bytes, name="in.jpg", out="out.png"):
    (tmp_path / name).write_bytes(data)
    code, _, err = cli("restore", tmp_path / name, "-o", tmp_path / out)
    return code, err, tmp_path / out


def test_exif_orientation_and_icc_are_copied(cli, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    exif[0x010F] = "dequant test camera"
    data = jpeg_bytes(photo(64, 96), 20, exif=exif.tobytes(), icc_profile=SRGB_ICC)
    for out in ("out.png", "out.jpg", "out.webp", "out.tif"):
        code, err, path = restore_bytes(cli, tmp_path, data, out=out)
        assert code == 0, err
        restored = Image.open(path)
        # Pillow turns TIFFs upright when it reads them; the stored dimensions are in the tags.
        stored = (restored.tag_v2[256], restored.tag_v2[257]) if out.endswith(".tif") else restored.size
        assert stored == (96, 64), "pixels stay in stored orientation"
        assert restored.getexif()[0x0112] == 6 and restored.getexif()[0x010F] == "dequant test camera"
        assert restored.info["icc_profile"] == SRGB_ICC


def test_alpha_is_bit_exact(cli, tmp_path):
    rgba = photo(80, 80).convert("RGBA")
    alpha = np.random.default_rng(0).integers(0, 256, (80, 80), dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    code, err, path = restore_bytes(cli, tmp_path, buffer.getvalue(), name="in.png")
    assert code == 0, err
    out = Image.open(path)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)
    code, err, _ = restore_bytes(cli, tmp_path, buffer.getvalue(), name="in.png", out="lossy.jpg")
    assert code == 1 and "alpha" in err


def test_gray_jpeg_stays_gray(cli, tmp_path):
    code, err, path = restore_bytes(cli, tmp_path, jpeg_bytes(photo().convert("L"), 10))
    assert code == 0, err
    assert Image.open(path).mode == "L"


def test_sixteen_bit_png_stays_sixteen_bit(cli, tmp_path):
    deep = (np.asarray(photo().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, "PNG")
    code, err, path = restore_bytes(cli, tmp_path, buffer.getvalue(), name="deep.png")
    assert code == 0, err
    out = np.asarray(Image.open(path))
    assert out.dtype in (np.uint16, np.int32) and out.max() > 255


@pytest.mark.parametrize("mode", ["P", "1", "LA"])
def test_other_modes_are_restored(cli, tmp_path, mode):
    buffer = io.BytesIO()
    photo().convert(mode).save(buffer, "PNG")
    code, err, path = restore_bytes(cli, tmp_path, buffer.getvalue(), name=f"m{mode}.png")
    assert code == 0, err
    assert Image.open(path).size == (128, 96)


def test_cmyk_without_profile_is_refused_clearly(cli, tmp_path):
    buffer = io.BytesIO()
    photo().convert("CMYK").save(buffer, "JPEG", quality=30)
    code, err, _ = restore_bytes(cli, tmp_path, buffer.getvalue(), name="cmyk.jpg")
    assert code == 1 and "CMYK" in err and "Traceback" not in err

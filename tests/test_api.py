"""The Python API: dequant.restore and dequant.Restorer, and a light `import dequant`."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes, photo

import dequant


def icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def jpeg_file(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates it
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes(photo(48, 64), 15, exif=exif.tobytes(), icc_profile=icc_profile()))
    return path


def test_import_is_light_and_loads_torch_on_first_use():
    code = ("import sys, time; t = time.perf_counter(); import dequant; took = time.perf_counter() - t\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "dequant.Restorer; assert 'torch' in sys.modules\nprint(took)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_restore_takes_a_path_bytes_or_a_pil_image_and_keeps_metadata(jpeg_file):
    from_path = dequant.restore(jpeg_file)
    from_bytes = dequant.restore(jpeg_file.read_bytes())
    from_pil = dequant.restore(Image.open(jpeg_file))
    assert from_path.size == (64, 48) and from_path.mode == "RGB"
    assert np.array_equal(np.asarray(from_path), np.asarray(from_bytes))
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))  # the PIL image's tables are read too
    given = Image.open(jpeg_file).info
    assert from_path.info["icc_profile"] == given["icc_profile"] and from_path.info["exif"] == given["exif"]
    buffer = io.BytesIO()
    from_path.save(buffer, "PNG")  # Pillow writes what `info` carries
    saved = Image.open(buffer)
    assert saved.info.get("icc_profile") == given["icc_profile"] and saved.getexif().get(0x0112) == 6


def test_the_api_gives_what_the_cli_writes(cli, jpeg_file, tmp_path):
    code, _, err = cli("restore", jpeg_file, "-o", tmp_path / "cli.png")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli.png")), np.asarray(dequant.restore(jpeg_file)))


def test_quality_override_and_model_choice(jpeg_file):
    default = np.asarray(dequant.restore(jpeg_file), dtype=int)
    harder = np.asarray(dequant.restore(jpeg_file, quality=5), dtype=int)
    other = np.asarray(dequant.restore(jpeg_file, model="arcnn-plus"), dtype=int)
    assert np.abs(default - harder).max() > 0 and np.abs(default - other).max() > 0


def test_restorer_for_repeated_calls(jpeg_file):
    restorer = dequant.Restorer("dequant-base", dequant.Settings(precision="fp32", tile=0))
    assert restorer.name == "dequant-base"
    first, second = restorer.restore(jpeg_file), restorer.restore(jpeg_file)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert "strength 15" in restorer.describe_last()


def test_bad_input_and_unknown_mode_or_model_raise_clear_errors(tmp_path):
    from dequant.images import ImageError
    from dequant.weights import WeightsError

    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        dequant.restore(tmp_path / "bad.jpg")
    with pytest.raises(WeightsError, match="no such model"):
        dequant.restore(tmp_path / "bad.jpg", model="no-such-model")
    with pytest.raises(WeightsError, match="--mode"):
        dequant.Restorer(mode="dreamy")


def test_a_table_conditioned_generator_is_told_the_files_tables(tmp_path):
    from dequant import archs, condition, degradations, images, jpeg
    from dequant.restorer import Restorer, Settings

    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8, "condition": "tables"})
    told = []
    original_forward = model.forward
    model.forward = lambda image, tables: told.append(tables) or original_forward(image, tables)
    restorer = Restorer(model, Settings(device="cpu", precision="fp32", backend="torch", tile=0))
    tables = degradations.encoder_tables("mozjpeg", 40, np.random.default_rng(0))
    picture = images.read(jpeg.encode(photo(32, 32), 40, tables=tables))
    restorer(picture)
    assert told[-1].shape == (1, 128) and np.allclose(told[-1][0].numpy(), jpeg.table_features(*tables))
    restorer(picture, quality=20)  # --quality: IJG's tables at that quality
    assert np.allclose(told[-1][0].numpy(), jpeg.table_features(*jpeg.ijg_tables(20)))
    assert np.array_equal(condition.of("tables", 20, None, gray=False), jpeg.table_features(*jpeg.ijg_tables(20)))
    assert restorer.restore(jpeg.encode(photo(32, 32), 40, tables=tables)).size == (32, 32)


def test_a_nearly_lossless_file_is_left_as_decoded_unless_it_was_saved_harshly_before():
    from dequant import images

    restorer = dequant.Restorer("dequant-base", dequant.Settings(precision="fp32", tile=0))
    clean_save = jpeg_bytes(photo(96, 128), 95)
    decoded = np.asarray(Image.open(io.BytesIO(clean_save)).convert("RGB"))
    assert np.array_equal(np.asarray(restorer.restore(clean_save)), decoded)
    assert "left as decoded" in restorer.describe_last()
    assert not np.array_equal(np.asarray(restorer.restore(clean_save, quality=95)), decoded)  # --quality: always run

    harsh_first = Image.open(io.BytesIO(jpeg_bytes(photo(96, 128), 10))).convert("RGB")
    resaved = jpeg_bytes(harsh_first, 95)
    assert images.read(resaved).quality == 95
    assert not np.array_equal(np.asarray(restorer.restore(resaved)), np.asarray(Image.open(io.BytesIO(resaved))))
    assert "strength 95" in restorer.describe_last()


def test_perceptual_mode_runs_the_registrys_gan(jpeg_file):
    from dequant import registry

    assert registry.default(registry.load(), "perceptual").name == "dequant-gan"
    sharp = dequant.Restorer(mode="perceptual", settings=dequant.Settings(precision="fp32"))
    assert sharp.name == "dequant-gan"
    fidelity = np.asarray(dequant.restore(jpeg_file), dtype=int)
    perceptual = np.asarray(sharp.restore(jpeg_file), dtype=int)
    assert perceptual.shape == fidelity.shape and np.abs(perceptual - fidelity).max() > 0

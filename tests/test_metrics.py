"""Each metric against values known by construction, and the protocol on a few LIVE1 images."""

import math

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, photo
from dequant import bench, metrics


def ramp(height=64, width=64):
    return np.tile(np.linspace(0, 255, width), (height, 1))


def test_psnr_of_identical_and_of_a_known_shift():
    image = ramp()
    assert metrics.psnr(image, image, 255) == math.inf
    assert metrics.psnr(image + 5, image, 255) == pytest.approx(10 * math.log10(255**2 / 25))


def test_ssim_of_identical_is_one_and_drops_with_noise():
    image = ramp()
    noisy = image + np.random.default_rng(0).normal(0, 20, image.shape)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(noisy, image) < 0.9


def test_blocking_effect_factor_of_a_known_blockiness():
    smooth = np.full((64, 64), 100.0)
    assert metrics.blocking_effect_factor(smooth) == 0
    # Steps of 10 between every 8x8 block, flat inside: edge mean square 100 (half the edge pairs
    # step), inner 0; eta = log2(8) / log2(64) = 0.5.
    blocky = smooth + 10 * ((np.arange(64)[None, :] // 8) % 2)
    edge_pairs_stepping = 64 * 7  # all 7 column edges step by 10; row edges do not
    edge_pairs = 64 * 7 * 2
    expected = 0.5 * (edge_pairs_stepping * 100 / edge_pairs)
    assert metrics.blocking_effect_factor(blocky) == pytest.approx(expected)
    assert metrics.psnr_b(blocky, blocky) == pytest.approx(10 * math.log10(255**2 / expected))


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="needs ../shared/weights")
def test_lpips_zero_for_identical_and_positive_for_distorted():
    lpips = metrics.LPIPS(SHARED / "weights")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert lpips.score(image, image) == pytest.approx(0, abs=1e-6)
    assert lpips.score(np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8), image) > 0.01


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="needs ../shared/weights")
def test_lpips_vgg_loss_is_zero_for_identical_grows_with_blur_and_has_gradients():
    import torch
    import torch.nn.functional as F

    from dequant.losses import LPIPSVGG

    loss = LPIPSVGG()
    clean = torch.rand(2, 3, 48, 48)
    slightly, heavily = (F.avg_pool2d(clean, k, stride=1, padding=k // 2) for k in (3, 7))
    assert float(loss(clean, clean)) == pytest.approx(0, abs=1e-6)
    assert 0 < float(loss(slightly, clean)) < float(loss(heavily, clean))
    restored = slightly.clone().requires_grad_(True)
    loss(restored, clean).backward()
    assert restored.grad.abs().sum() > 0 and not any(p.requires_grad for p in loss.parameters())


LIVE1 = SHARED / "datasets" / "eval" / "LIVE1"


@pytest.mark.skipif(not LIVE1.is_dir(), reason="needs ../shared/datasets/eval")
def test_protocol_on_three_live1_images():
    """The JPEG rows of the first LIVE1 images, against figures computed by hand with Pillow."""
    from PIL import Image
    import io

    files = bench.find_images([LIVE1])[:3]
    means = bench.evaluate(None, files, 10, False, {"psnr", "psnrb"}, None)
    by_hand = []
    for f in files:
        ref = Image.open(f).convert("RGB")
        buffer = io.BytesIO()
        ref.save(buffer, "JPEG", quality=10)
        by_hand.append(metrics.psnr(np.asarray(Image.open(buffer)), np.asarray(ref), 255))
    assert means["psnr"] == pytest.approx(np.mean(by_hand), abs=1e-9)
    assert means["psnrb"] < means["psnr"]  # JPEGs at quality 10 are blocky
    gray = bench.evaluate(None, files, 10, True, {"psnr"}, None)
    assert gray["psnr"] > means["psnr"]  # luma alone suffers less than RGB


def test_bench_cli_writes_json_and_markdown(cli, tmp_path):
    from PIL import Image
    from conftest import photo

    for i in range(2):
        photo(64, 80, seed=i).save(tmp_path / f"ref{i}.png")
    code, out, err = cli("bench", "--data", tmp_path, "--quality", "10,50", "--metrics", "psnr,ssim,psnrb",
                         "--model", "jpeg", "--json", tmp_path / "r.json", "--markdown", tmp_path / "r.md")
    assert code == 0, err
    import json

    records = json.loads((tmp_path / "r.json").read_text())
    assert [r["quality"] for r in records] == [10, 50] and records[0]["model"] == "jpeg"
    keys = {"model", "data", "quality", "gray", "images", "psnr", "ssim", "psnrb", "lpips",
            "seconds_per_image", "megapixels_per_second", "peak_memory_mb", "device"}
    assert keys <= records[0].keys() and records[0]["images"] == 2
    assert records[1]["psnr"] > records[0]["psnr"]
    assert "| jpeg |" in (tmp_path / "r.md").read_text()


@pytest.mark.skipif(not LIVE1.is_dir(), reason="needs ../shared/datasets/eval")
def test_double_jpeg_protocol_on_three_live1_images():
    """FBCNN's non-aligned double JPEG on gray LIVE1: QF1, crop 4 rows and columns, QF2; by hand with Pillow."""
    from PIL import Image
    import io

    def save(image, quality):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer)

    files = bench.find_images([LIVE1])[:3]
    means = bench.evaluate(None, files, 30, True, {"psnr"}, None, first=10, shift=(4, 4))
    by_hand = []
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB")).astype(np.float64)
        y = np.round(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255).astype(np.uint8)
        once = np.asarray(save(Image.fromarray(y), 10))[4:, 4:]
        twice = np.asarray(save(Image.fromarray(once), 30))
        by_hand.append(metrics.psnr(twice, y[4:, 4:], 255))
    assert means["psnr"] == pytest.approx(np.mean(by_hand), abs=1e-9)
    single = bench.evaluate(None, files, 30, True, {"psnr"}, None)
    assert means["psnr"] < single["psnr"] - 1  # the hidden quality-10 save does most of the damage


def test_bench_double_cli_labels_cells_and_records_the_machine(cli, tmp_path):
    from conftest import photo
    import json

    for i in range(2):
        photo(64, 80, seed=i).save(tmp_path / f"ref{i}.png")
    code, out, err = cli("bench", "--data", tmp_path, "--double", "10,50", "--quality", "30", "--shift", "2,3",
                         "--metrics", "psnr", "--json", tmp_path / "r.json", "--markdown", tmp_path / "r.md",
                         "--precision", "fp32", "--tile", "0")
    assert code == 0, err
    records = json.loads((tmp_path / "r.json").read_text())
    jpeg_rows = [r for r in records if r["model"] == "jpeg"]
    assert [(r["first_quality"], r["quality"], r["shift"]) for r in jpeg_rows] == [(10, 30, [2, 3]), (50, 30, [2, 3])]
    restored = [r for r in records if r["model"] != "jpeg"]
    assert restored and all(r["precision"] == "fp32" and r["cpu"] for r in restored)
    assert "10>30" in out.decode() and "| 50>30 |" in (tmp_path / "r.md").read_text()
    code, _, err = cli("bench", "--data", tmp_path, "--double", "10", "--shift", "9,0", "--model", "jpeg")
    assert code == 2 and "--shift" in err


def test_bench_reports_the_worst_image_and_how_many_lose(cli, tmp_path):
    """The per-image gains behind a row: its worst image and the count below their JPEG, checked by hand."""
    import json

    from dequant import images
    from dequant.restorer import Restorer, Settings

    for i in range(3):
        photo(48, 64, seed=i).save(tmp_path / f"ref{i}.png")
    code, _, err = cli("bench", "--data", tmp_path, "--quality", "90", "--metrics", "psnr", "--model", "dequant-base",
                       "--precision", "fp32", "--backend", "torch", "--json", tmp_path / "r.json")
    assert code == 0, err
    jpeg_row, model_row = json.loads((tmp_path / "r.json").read_text())
    assert jpeg_row["worst_gain"] is None and jpeg_row["losing"] is None
    restorer = Restorer("dequant-base", Settings(precision="fp32", backend="torch"))
    gains = []
    for i in range(3):
        clean, data = bench.test_pair(Image.open(tmp_path / f"ref{i}.png"), 90, gray=False)
        picture = images.read(data)
        after = images.to_uint8(restorer(picture).pixels)
        gains.append(metrics.psnr(after, clean, 255) - metrics.psnr(images.to_uint8(picture.pixels), clean, 255))
    assert model_row["worst_gain"] == pytest.approx(min(gains), abs=1e-6)
    assert model_row["losing"] == sum(g < 0 for g in gains)

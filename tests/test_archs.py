"""The paper generators: any image size in and out, identity before training, CED's bins, the shipped configs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dequant import archs, condition, images, jpeg, train
from dequant.archs import ced
from dequant.restorer import Restorer, Settings

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("name", sorted(archs.ARCHS))
def test_any_size_comes_back_the_same_size(name):
    model = archs.build(name, {}).eval()
    for height, width in ((1, 1), (17, 33), (64, 40)):
        image = torch.rand(2, 3, height, width)
        with torch.inference_mode():
            out = model(image, torch.tensor([10.0, 50.0]))
        assert out.shape == image.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(archs.ARCHS))
def test_untrained_residual_generator_starts_at_the_identity(name):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 40, 56)
    with torch.inference_mode():
        out = archs.build(name, {}).eval()(image, torch.tensor([30.0]))
    # arcnn-plus starts near it (a small random last layer; a zero one would never learn there)
    assert (out - image).abs().mean() < (0.05 if name == "arcnn-plus" else 1e-6)


def test_dct_filters_are_orthonormal():
    basis = ced.dct_filters().flatten(1)
    assert torch.allclose(basis @ basis.T, torch.eye(16), atol=1e-5)


def test_ced_bins_split_coefficients_into_equal_classes():
    torch.manual_seed(0)
    model = archs.build("ced", {"widths": [8, 8]}).train()
    clean = torch.rand(8, 3, 64, 64)
    _, terms = model(clean + 0.05 * torch.randn_like(clean), torch.full((8,), 10.0), target=clean)
    assert bool(model.bins_fitted) and terms["ce"] > 0
    labels = model.classes_of(ced.frequencies(clean, model.filters))
    shares = torch.bincount(labels[:, 1:].flatten(), minlength=ced.CLASSES).float() / labels[:, 1:].numel()
    assert torch.allclose(shares, torch.full_like(shares, 1 / ced.CLASSES), atol=0.01)
    assert (model.edges[:, 1:] >= model.edges[:, :-1]).all()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_training_configs_load_and_build(path):
    cfg = train.load_config(path, [])
    model = archs.build(cfg.arch, cfg.arch_config)
    assert sum(p.numel() for p in model.parameters()) <= 4_000_000


def test_dequantizernet_without_batch_norm_has_none():
    with_bn, without = archs.build("dequantizernet", {}), archs.build("dequantizernet", {"batch_norm": False})
    is_bn = lambda module: isinstance(module, torch.nn.BatchNorm2d)
    assert any(map(is_bn, with_bn.modules())) and not any(map(is_bn, without.modules()))


def test_qunet_with_nafnet_blocks_keeps_size_and_starts_at_the_identity():
    torch.manual_seed(0)
    model = archs.build("qunet", {"widths": [16, 32, 64], "blocks": [1, 1, 2], "block": "naf"}).eval()
    image = torch.rand(2, 3, 37, 45)
    with torch.inference_mode():
        out = model(image, torch.tensor([10.0, 70.0]))
    assert out.shape == image.shape and (out - image).abs().max() < 1e-6
    assert any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in model.modules())  # depth-wise
    with pytest.raises(ValueError, match="block"):
        archs.build("qunet", {"block": "transformer"})


def test_qunet_conditioned_on_tables_takes_128_features():
    torch.manual_seed(0)
    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8, "condition": "tables"})
    assert model.contract.condition == "tables"
    assert archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1]}).contract.condition == "quality"
    torch.nn.init.normal_(model.tail[0].weight)  # leave the identity start, so the tables matter
    image, tables = torch.rand(2, 3, 24, 24), torch.rand(2, 128)
    with torch.inference_mode():
        out = model(image, tables)
        assert out.shape == image.shape
        assert not torch.allclose(out, model(image, tables.flip(0)))
    with pytest.raises(ValueError, match="condition"):
        archs.build("qunet", {"condition": "exif"})


def test_content_features_tell_a_screenshot_from_a_photograph():
    rng = np.random.default_rng(0)
    x = np.arange(64)[None, :, None]
    photo = np.clip(128 + 40 * np.sin(x / 7) + rng.normal(0, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    screenshot = np.full((64, 64, 3), 240, np.uint8)
    screenshot[8:16, 4:60:6] = 20  # a line of text
    flat_photo, equal_photo, sharp_photo = condition.content_features(photo)
    flat, equal, sharp = condition.content_features(screenshot)
    assert flat > 0.8 > 0.05 > flat_photo and equal > 0.8 > 0.05 > equal_photo and sharp > sharp_photo
    assert np.allclose(condition.content_features(screenshot / 255.0), condition.content_features(screenshot))
    assert np.array_equal(condition.content_features(np.zeros((5, 3, 1), np.float32)), [0, 1, 0])  # under a block


def test_a_generator_told_the_content_restores_whole_and_in_tiles_alike(tmp_path):
    """tables+content: the pixels' features join the tables' (131 numbers), computed once per picture, so
    tiles are told what the whole picture is."""
    torch.manual_seed(0)
    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8, "condition": "tables+content"})
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    assert model.embed.mlp[0].in_features == 131
    picture = images.read(jpeg.encode(Image.fromarray(np.full((96, 80, 3), 200, np.uint8)), 40))
    told = condition.of("tables+content", 40, picture.tables, False, picture.pixels)
    assert told.shape == (131,) and told[-3] == condition.CONTENT_SCALE  # all flat
    with pytest.raises(ValueError, match="pixels"):
        condition.of("tables+content", 40, None, False)
    whole = Restorer(model.eval(), Settings(precision="fp32", tile=0, backend="torch"))(picture).pixels
    tiled = Restorer(model.eval(), Settings(precision="fp32", tile=32, overlap=16, backend="torch"))(picture).pixels
    assert np.abs(whole - tiled).max() <= 1 / 255

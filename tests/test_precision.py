"""Precision: bf16 autocast only where the CPU runs it natively; both decisions forced on any machine."""

import numpy as np
import pytest
import torch

from conftest import jpeg_bytes, photo
from dequant import archs, images, runtime
from dequant.restorer import Restorer, Settings

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Force the capability check: yes or no, whatever this machine's CPU is."""
    def force(native: bool):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    return force


def test_auto_takes_bf16_only_on_a_cpu_that_runs_it_natively(native_bf16):
    native_bf16(True)
    assert runtime.precision_for("auto", CPU)[0] == "bf16"
    assert runtime.check_precision("bf16", CPU) is None
    native_bf16(False)
    assert runtime.precision_for("auto", CPU) == ("fp32", "no native bf16, no int8 twin of this model for auto")
    assert "emulates bf16" in runtime.check_precision("bf16", CPU)
    assert runtime.precision_for("fp32", CPU)[0] == "fp32" and runtime.precision_for("bf16", CPU)[0] == "bf16"


def test_fp16_on_the_cpu_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="needs a GPU"):
        runtime.check_precision("fp16", CPU)
    with pytest.raises(ValueError, match="auto"):
        runtime.precision_for("fp64", CPU)
    with pytest.raises(ValueError, match="int8 runs on the CPU"):
        runtime.check_precision("int8", torch.device("cuda"))


def test_cpu_description_names_the_capability():
    text = runtime.cpu_description()
    assert torch.backends.cpu.get_cpu_capability() in text and "bf16" in text


def tiny_model():
    torch.manual_seed(0)
    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    for parameter in model.parameters():  # away from the identity, so the precision shows in the output
        torch.nn.init.normal_(parameter, std=0.05)
    return model


@pytest.mark.parametrize("native", [True, False])
def test_both_precisions_restore_a_tiny_image(native_bf16, native, capsys):
    native_bf16(native)
    picture = images.read(jpeg_bytes(photo(40, 56), 20))
    exact = Restorer(tiny_model(), Settings(precision="fp32", tile=0, backend="torch"))(picture).pixels
    auto = Restorer(tiny_model(), Settings(precision="auto", tile=0, backend="torch"))
    assert auto.precision == ("bf16" if native else "fp32")
    forced = Restorer(tiny_model(), Settings(precision="bf16", tile=0, backend="torch"))
    warned = "emulates bf16" in capsys.readouterr().err
    assert warned == (not native)
    half = forced(picture).pixels
    assert half.dtype == np.float32 and half.shape == exact.shape
    assert 0 < np.abs(half - exact).max() < 4 / 255  # computed in bf16, still the same picture
    if not native:
        assert np.array_equal(auto(picture).pixels, exact)


def test_cli_precision_choices(cli, tmp_path):
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg_bytes(photo(48, 64), 20))
    code, _, err = cli("restore", source, "-o", tmp_path / "a.png", "--precision", "fp16", "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and "fp16 needs a GPU" in err
    code, _, err = cli("restore", source, "-o", tmp_path / "b.png", "--precision", "half")
    assert code == 2 and "--precision takes auto|fp32|bf16|fp16|int8" in err


def test_verbose_says_device_precision_and_per_file_quality_strength_tile_time(cli, tmp_path):
    for name, quality in (("a.jpg", 20), ("b.jpg", 70)):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(jpeg_bytes(photo(48, 64), quality))
    code, _, err = cli("restore", tmp_path / "in", "-o", tmp_path / "out", "--verbose", "--precision", "fp32")
    assert code == 0, err
    assert "model dequant-content on cpu (" in err and "), fp32" in err
    lines = [line for line in err.splitlines() if ".jpg:" in line]
    assert len(lines) == 2
    assert "a.jpg: quality read 20, strength 20, tile " in lines[0] and lines[0].endswith(" s")
    assert "b.jpg: quality read 70, strength 70" in lines[1] and "cpu fp32" in lines[1]
    code, _, err = cli("restore", tmp_path / "in" / "a.jpg", "-o", tmp_path / "c.png", "-v", "--quality", "35", "--tile", "0")
    assert "quality read 20, strength 35 (--quality), whole image" in err

"""Registry resolution: bundled files, the Hub through a local server, offline mode, tampering."""

import hashlib
import io

import pytest
import torch

from conftest import jpeg_bytes, photo, run_dequant
from dequant import archs, loading, registry, weights
from hub_server import FakeHub

TINY = {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8}


def tiny_model_bytes(tmp_path, seed=0) -> bytes:
    torch.manual_seed(seed)
    model = archs.build("qunet", TINY)
    path = tmp_path / f"tiny{seed}.safetensors"
    weights.save(model, path, {"arch": "qunet", "config": '{"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8}'})
    return path.read_bytes()


def write_registry(tmp_path, data: bytes, sha: str | None = None, file="tiny-hub.safetensors", repo="dequant/tiny"):
    path = tmp_path / "weights.toml"
    path.write_text(
        f'[models.tiny-hub]\narch = "qunet"\nconfig = {{ widths = [8, 8, 8], blocks = [1, 1, 1], cond_dim = 8 }}\n'
        f'file = "{file}"\nsha256 = "{sha or hashlib.sha256(data).hexdigest()}"\ndefault = true\n'
        f'hub_repo = "{repo}"\nrevision = "main"\n'
    )
    return path


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "in.jpg"
    path.write_bytes(jpeg_bytes(photo(64, 64)))
    return path


def test_every_registered_model_is_bundled_and_verified():
    models = registry.load()
    assert models, "weights.toml lists no model"
    for entry in models.values():
        path = loading.entry_file(entry)
        assert path.parent == weights.BUNDLED
        loading.load_entry(entry)  # builds the model (an int8 twin quantization-aware) and loads its weights


def test_tampered_bundled_file_is_refused(tmp_path, monkeypatch):
    entry = registry.default(registry.load())
    data = bytearray((weights.BUNDLED / entry.file).read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit in the tensors
    (tmp_path / entry.file).write_bytes(bytes(data))
    monkeypatch.setattr(weights, "BUNDLED", tmp_path)
    with pytest.raises(weights.WeightsError, match="sha256"):
        loading.entry_file(entry)


def test_download_from_the_hub_then_offline_from_the_cache(tmp_path, sample):
    data = tiny_model_bytes(tmp_path)
    reg = write_registry(tmp_path, data)
    env = {"DEQUANT_REGISTRY": str(reg), "HF_HOME": str(tmp_path / "hf")}
    with FakeHub() as hub:
        hub.files[("dequant/tiny", "tiny-hub.safetensors")] = data
        result = run_dequant("restore", sample, "-o", tmp_path / "a.png", env={**env, "HF_ENDPOINT": hub.url})
        assert result.returncode == 0, result.stderr
        assert any(r.startswith("GET /dequant/tiny/resolve/main/tiny-hub.safetensors") for r in hub.requests)
        served = len(hub.requests)
        # Offline: the cached copy is used and the server is not asked again.
        result = run_dequant("restore", sample, "-o", tmp_path / "b.png",
                             env={**env, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr
        assert len(hub.requests) == served
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_offline_without_cache_is_a_clear_error(tmp_path, sample):
    reg = write_registry(tmp_path, tiny_model_bytes(tmp_path))
    result = run_dequant("restore", sample, "-o", tmp_path / "a.png",
                         env={"DEQUANT_REGISTRY": str(reg), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert b"offline" in result.stderr and b"Traceback" not in result.stderr


def test_tampered_download_is_refused(tmp_path, sample):
    data = tiny_model_bytes(tmp_path)
    reg = write_registry(tmp_path, data)
    with FakeHub() as hub:
        hub.files[("dequant/tiny", "tiny-hub.safetensors")] = tiny_model_bytes(tmp_path, seed=1)  # not the registered file
        result = run_dequant("restore", sample, "-o", tmp_path / "a.png",
                             env={"DEQUANT_REGISTRY": str(reg), "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url})
    assert result.returncode == 2 and b"sha256" in result.stderr
    assert not (tmp_path / "a.png").exists()


def test_hf_url_loads_a_self_describing_file(tmp_path, sample):
    with FakeHub() as hub:
        hub.files[("someone/models", "weights/tiny.safetensors")] = tiny_model_bytes(tmp_path)
        result = run_dequant("restore", sample, "-o", tmp_path / "a.png", "--model",
                             f"hf://someone/models/weights/tiny.safetensors@{hub.commit}",
                             env={"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url})
    assert result.returncode == 0, result.stderr


def test_pickles_are_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Boom()}, evil)
    with pytest.raises(weights.WeightsError, match="refused"):
        weights.load_state(evil)
    plain = tmp_path / "plain.pth"
    torch.save(archs.build("qunet", TINY).state_dict(), plain)
    assert loading.build_and_load("qunet", TINY, plain) is not None
    with pytest.raises(weights.WeightsError, match="arch"):
        loading.load_file_model(plain)  # a bare .pth cannot say what it is


def test_a_corrupt_weight_file_is_one_line(cli, tmp_path, sample):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    code, _, err = cli("restore", sample, "-o", tmp_path / "a.png", "--model", broken)
    assert code == 2 and "safetensors" in err and "Traceback" not in err

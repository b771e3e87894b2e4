"""ONNX export of every registry model, and onnxruntime as a restore backend."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import jpeg_bytes, photo

onnx = pytest.importorskip("onnx", reason="onnx and onnxruntime are not installed")
ort = pytest.importorskip("onnxruntime", reason="onnx and onnxruntime are not installed")

from dequant import condition, loading, onnx_graph, registry  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
MODELS = sorted(registry.load())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_and_matches_torch_at_any_size(cli, tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    code, out, err = cli("export", name, "-o", path)
    assert code == 0, err
    assert f"sha256 {onnx_graph.sha256(path.read_bytes())}" in out.decode()
    model = onnx.load(path)
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["name"] == name and meta["weights_sha256"] == registry.load()[name].sha256
    assert meta["precision"] == ("int8" if registry.load()[name].int8_of else "fp32")
    assert "float32 NCHW" in meta["input_convention"] and meta["license"]
    generator, _ = loading.load_model(name, registry.load())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    assert ("quality" in inputs) == (meta["uses_quality"] == "true") == (generator.contract.condition == "quality")
    for shape in ((1, 3, 37, 53), (2, 3, 50, 29)):  # not multiples of 16, batch 1 and 2
        image = torch.rand(*shape)
        quality = torch.tensor([20.0, 60.0])[: shape[0]]
        if "tables" in inputs:  # a table-conditioned model is told IJG's tables at those qualities (and the content)
            quality = torch.from_numpy(np.stack([condition.of(generator.contract.condition, float(q), None, False,
                                                              picture.permute(1, 2, 0).numpy())
                                                 for q, picture in zip(quality, image)]))
        feed = {"image": image.numpy(), **{name: quality.numpy() for name in ("quality", "tables") if name in inputs}}
        got = session.run(["restored"], feed)[0]
        with torch.no_grad():
            expected = generator.eval()(image, quality).clamp(0, 1).numpy()
        # An int8 graph: onnxruntime's integer arithmetic rounds a level differently here and there (torch's
        # fake quantization computes in float), and on noise the flips add up to a few output levels: up to
        # 4/255 measured for dequant-content-int8, whose output levels are 0.67/255 apart.
        tolerance = 5 / 255 if generator.contract.precisions == ("int8",) else 1e-4
        assert got.shape == shape and np.abs(got - expected).max() < tolerance


def make_folder(root: Path) -> Path:
    folder = root / "in"
    folder.mkdir()
    for i, (height, width) in enumerate(((70, 90), (45, 131))):
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(photo(height, width, seed=i), 15 + 20 * i))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return folder


def test_backend_switch_gives_the_same_files_and_the_same_errors(cli, tmp_path):
    folder = make_folder(tmp_path)
    results = {}
    for backend in ("torch", "onnxruntime"):
        code, _, err = cli("restore", folder, "-o", tmp_path / backend, "--backend", backend, "--tile", "32",
                           "--precision", "fp32")
        assert code == 1 and err.count("\n") == 2 and "broken.jpg: not a readable image" in err, err
        results[backend] = {p.name: np.asarray(Image.open(p), dtype=int) for p in sorted((tmp_path / backend).iterdir())}
    assert results["torch"].keys() == results["onnxruntime"].keys() == {"0.png", "1.png"}
    for name, pixels in results["torch"].items():
        assert np.abs(pixels - results["onnxruntime"][name]).max() <= 1


def test_backend_refuses_half_precision_and_unknown_names(cli, tmp_path):
    source = make_folder(tmp_path) / "0.jpg"
    code, _, err = cli("restore", source, "-o", tmp_path / "a.png", "--backend", "onnxruntime", "--precision", "bf16")
    assert code == 2 and "fp32" in err
    code, _, err = cli("restore", source, "-o", tmp_path / "b.png", "--backend", "tensorrt")
    assert code == 2 and "--backend" in err


@pytest.mark.parametrize("model", ["dequant-real", "dequant-long", "dequant-content"])  # told the quality; the tables; and the content
def test_readme_snippet_restores_a_jpeg_without_dequant(cli, tmp_path, model):
    text = README.read_text()
    snippet = re.search(r"<!-- onnx-snippet.*?-->\n```python\n(.*?)```", text, re.S).group(1)
    assert "dequant" not in snippet
    (tmp_path / "restore.py").write_text(snippet)
    cli("export", model, "-o", tmp_path / "model.onnx")
    source = make_folder(tmp_path) / "0.jpg"
    result = subprocess.run([sys.executable, tmp_path / "restore.py", tmp_path / "model.onnx", source, tmp_path / "s.png"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # The graph is the network; keeping to the file's cells is the step after it (README, ONNX).
    code, _, err = cli("restore", source, "-o", tmp_path / "d.png", "--tile", "0", "--precision", "fp32", "--model", model,
                       "--no-consistent")
    assert code == 0, err
    by_snippet, by_dequant = (np.asarray(Image.open(tmp_path / n), dtype=int) for n in ("s.png", "d.png"))
    assert by_snippet.shape == by_dequant.shape and np.abs(by_snippet - by_dequant).max() <= 1


def test_export_refuses_to_overwrite_and_names_a_missing_model(cli, tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"keep")
    code, _, err = cli("export", "-o", tmp_path / "x.onnx")
    assert code == 2 and "exists" in err and (tmp_path / "x.onnx").read_bytes() == b"keep"
    code, _, err = cli("export", "no-such-model", "-o", tmp_path / "y.onnx")
    assert code == 2 and "no-such-model" in err


def test_auto_backend_is_onnxruntime_only_for_fp32_on_the_cpu(tmp_path, monkeypatch):
    from dequant.runtime import pick_backend

    cpu = torch.device("cpu")
    assert pick_backend("auto", cpu, "fp32") == "onnxruntime"  # the extra is installed here
    assert pick_backend("auto", cpu, "bf16") == "torch"  # native bf16: torch is twice as fast
    assert pick_backend("auto", torch.device("cuda"), "bf16") == "torch"
    assert pick_backend("torch", cpu, "fp32") == "torch"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    generator, _ = loading.load_model("arcnn-plus", registry.load())
    first = onnx_graph.cached_graph(generator)
    assert len(list((tmp_path / "dequant" / "onnx").glob("*.onnx"))) == 1
    assert onnx_graph.cached_graph(generator) == first  # read back, not exported again
    with torch.no_grad():
        next(generator.parameters()).add_(0.01)
    assert onnx_graph.cached_graph(generator) != first  # other weights, another graph

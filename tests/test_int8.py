"""int8: fake quantization in torch computes what onnxruntime's int8 kernels compute from the exported graph."""

import dataclasses

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

from dequant import archs, int8, onnx_graph  # noqa: E402


def calibrated(keep_float=()):
    torch.manual_seed(0)
    model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    for parameter in model.parameters():  # away from the identity, so that the rounding shows
        torch.nn.init.normal_(parameter, std=0.05)
    float_model = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    float_model.load_state_dict(model.state_dict())
    int8.prepare(model, keep_float)
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(2, 3, 40, 56), torch.tensor([30.0, 60.0]))
    return model.eval(), float_model.eval()


def test_convolutions_and_residual_arithmetic_run_as_int8_in_onnxruntime_and_agree_with_torch(tmp_path):
    model, float_model = calibrated()
    image, quality = torch.rand(2, 3, 40, 56), torch.tensor([20.0, 70.0])
    with torch.no_grad():
        fake, exact = model(image, quality).clamp(0, 1).numpy(), float_model(image, quality).clamp(0, 1).numpy()
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    session = ort.InferenceSession(onnx_graph.to_onnx(model, {}), options, providers=["CPUExecutionProvider"])
    got = session.run(["restored"], {"image": image.numpy(), "quality": quality.numpy()})[0]
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in float_model.modules())
    assert ops.count("QLinearConv") == convolutions and "Conv" not in ops
    assert "Relu" not in ops  # each block's ReLU fused into its first convolution (rounded after it)
    # Every residual sum and gain in int8 (5 blocks, 2 skips): the stream between convolutions stays uint8.
    assert ops.count("QLinearAdd") == 5 + 2 and ops.count("QLinearMul") == 5
    rounded_inputs = [m for m in model.modules() if isinstance(m, int8.QuantConv) and not m.input_on_levels]
    assert len(rounded_inputs) == 1  # the first convolution's: no requantization anywhere else
    assert np.abs(got - fake).max() <= 2 / 255  # the runtime's integer arithmetic, to a level or two
    assert 0 < np.abs(fake - exact).max() < 0.05  # rounded, still the same picture


def test_convolutions_kept_in_float_are_left_alone():
    model, _ = calibrated(keep_float=("head.1", "tail.0"))
    assert isinstance(model.head[1], torch.nn.Conv2d) and isinstance(model.tail[0], torch.nn.Conv2d)
    assert isinstance(model.down1, int8.QuantConv) and isinstance(model.enc1.blocks[0].merge, int8.QuantAdd)


@pytest.mark.parametrize("calibration, range_lr", [(0, 0.0), (1, 0.0), (1, 0.01)])
def test_quantization_aware_training_exports_weights_that_rebuild_their_int8_model(tmp_path, calibration, range_lr):
    """train --set int8=true starts from float weights, trains with the rounding (ranges moving with the
    batches, or calibrated on whole pictures first, then fixed or learned), and its exported file rebuilds the int8 model
    (ranges included) by itself."""
    from conftest import photo
    from dequant import loading, train, weights

    for split, count in (("train", 2), ("val", 1)):
        (tmp_path / split).mkdir()
        for i in range(count):
            photo(64, 64, seed=i).save(tmp_path / split / f"{i}.png")
    tiny = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    weights.save(tiny, tmp_path / "float.safetensors", {"arch": "qunet", "config": "{}"})
    cfg = train.load_config(None, ['arch_config={widths=[8, 8, 8], blocks=[1, 1, 1], cond_dim=8}', "int8=true",
                                   'int8_keep_float=["tail.0"]', f'init="{tmp_path / "float.safetensors"}"',
                                   "steps=2", "batch=2", "crop=48", "val_images=1", "val_every=2", "checkpoint_every=2",
                                   f"int8_calibration={calibration}", "int8_clip=1e-3", f"int8_range_lr={range_lr}"])
    exported = train.train(cfg, [tmp_path / "train"], [tmp_path / "val"], tmp_path / "run", False, "test", log=lambda _: None)
    model = loading.load_file_model(exported)
    assert isinstance(model.down1, int8.QuantConv) and isinstance(model.tail[0], torch.nn.Conv2d)
    assert float(model.down1.output.high) > float(model.down1.output.low)  # the ranges came with the weights
    if range_lr:  # learned ends resume as they were left, optimizer state and all
        resumed = train.train(dataclasses.replace(cfg, steps=3), [tmp_path / "train"], [tmp_path / "val"], tmp_path / "run",
                              True, "test", log=lambda _: None)
        assert float(loading.load_file_model(resumed).down1.output.high) != float(model.down1.output.high)


def test_a_learned_range_rounds_as_the_runtime_will_and_its_ends_learn():
    """In training a learned range's levels are those the export (and onnxruntime) computes, and the loss reaches
    both ends: clipped values pull an end out, the rounding of the rest pulls on the step."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4000), torch.tensor([9.0, -7.0])])
    value_range = int8.Range(momentum=None)
    value_range.train()
    value_range(x, True)
    value_range.low.data.fill_(-2.0), value_range.high.data.fill_(3.0)  # narrower than the values: some clipped
    value_range.learn()
    learned = value_range(x, True)
    ((learned - x) ** 2).mean().backward()
    assert value_range.low.grad > 0 > value_range.high.grad  # descending widens the range towards -7 and 9
    value_range.eval()
    with torch.no_grad():
        assert torch.allclose(value_range(x, False), learned.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="int8_calibration"):
        from dequant import train
        train.load_config(None, ["int8=true", "int8_range_lr=0.01"])


def test_calibration_reads_each_folder_once_one_picture_at_a_time_and_large_ones_at_their_centre(tmp_path):
    from conftest import photo
    from dequant import train

    (tmp_path / "a").mkdir()
    photo(600, 700, seed=0).save(tmp_path / "a" / "0.png")
    photo(64, 80, seed=1).save(tmp_path / "a" / "1.png")
    photo(64, 64, seed=2).save(tmp_path / "a" / "2.png")  # beyond int8_calibration
    cfg = train.load_config(None, ["int8_calibration=2", "val_qualities=[50]"])
    pairs = train.calibration_pairs([tmp_path / "a", tmp_path / "a"], cfg)
    assert not isinstance(pairs, list)  # a stream: whole pictures under every recipe at once filled 19 GB
    shapes = [tuple(pair.compressed.shape[-2:]) for pair in pairs]
    recipes = len(train.degradations.validation_recipes([50], real_world=cfg.degradation.real_world))
    assert len(shapes) == 2 * recipes  # the folder named twice counts once
    assert (512, 512) in shapes and (64, 80) in shapes
    (tmp_path / "b").mkdir()
    photo(64, 64, seed=3).save(tmp_path / "b" / "0.png")
    only_b = train.load_config(None, ["int8_calibration=2", "val_qualities=[50]", 'int8_calibration_folders=["b"]'])
    assert len(list(train.calibration_pairs([tmp_path / "a", tmp_path / "b"], only_b))) == recipes


@pytest.mark.parametrize("quantized", [False, True])
def test_distill_learns_what_the_float_init_network_computes(tmp_path, monkeypatch, quantized):
    """With distill, the loss holds the MSE against the init network's own output: nothing for the float
    network at its first step (it is its teacher), the rounding's cost for the int8 one."""
    from conftest import photo
    from dequant import runtime, train, weights

    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        photo(64, 64, seed=0).save(tmp_path / split / "0.png")
    tiny = archs.build("qunet", {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8})
    torch.nn.init.normal_(tiny.tail[0].weight, std=0.1)  # a network that changes its input
    weights.save(tiny, tmp_path / "float.safetensors", {"arch": "qunet", "config": "{}"})
    cfg = train.load_config(None, ['arch_config={widths=[8, 8, 8], blocks=[1, 1, 1], cond_dim=8}', f"int8={str(quantized).lower()}",
                                   f'init="{tmp_path / "float.safetensors"}"', "steps=1", "batch=2", "crop=48",
                                   "val_images=1", "val_every=1", "log_every=1", "l1=0", "distill=1.0"])
    lines = []
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)  # where auto trains floats in bf16
    train.train(cfg, [tmp_path / "train"], [tmp_path / "val"], tmp_path / "run", False, "test", log=lines.append)
    distill = float(next(line for line in lines if line.startswith("step 1/")).split("distill ")[1].split()[0])
    assert (distill > 0) if quantized else distill == 0
    computing = next(line for line in lines if line.startswith("precision ")).split()[1]
    assert computing == ("fp32" if quantized else "bf16")  # bf16 would blur the 256 levels int8 rounds to
    with pytest.raises(ValueError, match="int8 = true trains in fp32"):
        train.load_config(None, ["int8=true", "precision=bf16"])


TINY = {"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8}


@pytest.fixture
def twin_registry(tmp_path, monkeypatch):
    """A registry of one tiny default and its int8 twin (calibrated), as DEQUANT_REGISTRY."""
    from dequant import weights

    model, float_model = calibrated()
    rows = []
    for name, module, extra in (("tiny", float_model, "default = true\n"), ("tiny-int8", model, 'int8_of = "tiny"\nint8_auto = true\n')):
        path = tmp_path / f"{name}.safetensors"
        weights.save(module, path, {"arch": "qunet", "config": '{"widths": [8, 8, 8], "blocks": [1, 1, 1], "cond_dim": 8}'})
        rows.append(f'[models.{name}]\narch = "qunet"\nconfig = {weights.toml_inline(TINY)}\nfile = "{path}"\n'
                    f'sha256 = "{weights.sha256(path)}"\n{extra}')
    registry_file = tmp_path / "weights.toml"
    registry_file.write_text("\n".join(rows))
    monkeypatch.setenv("DEQUANT_REGISTRY", str(registry_file))
    return registry_file


@pytest.fixture
def cpu_features(monkeypatch):
    """Fake what the CPU reports: native bf16 or not, and its best int8 feature (None: none)."""
    from dequant import runtime

    def fake(native_bf16: bool, int8_feature: str | None):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native_bf16)
        monkeypatch.setattr(runtime, "cpu_int8_feature", lambda: int8_feature)
    return fake


@pytest.mark.parametrize("native_bf16,feature,backend,expected", [
    (False, "avx2", "auto", ("int8", "onnxruntime")),  # most laptops: int8
    (False, "avx512_vnni", "auto", ("int8", "onnxruntime")),
    (False, "dot", "auto", ("int8", "onnxruntime")),  # Arm with dot products
    (True, "amx_int8", "auto", ("bf16", "torch")),  # AMX computes bf16: stays bf16 (int8 vs bf16 unmeasured there)
    (True, "avx512_vnni", "auto", ("int8", "onnxruntime")),  # Zen 4: native bf16, but int8 is faster
    (True, "avx512_vnni", "torch", ("bf16", "torch")),
    (False, None, "auto", ("fp32", "onnxruntime")),  # no int8 dot products: fp32
    (False, "avx2", "torch", ("fp32", "torch")),  # torch has no int8 kernels of ours: fp32
])
def test_auto_picks_the_precision_from_the_cpus_features(twin_registry, cpu_features, native_bf16, feature, backend, expected):
    from dequant.restorer import Restorer, Settings

    cpu_features(native_bf16, feature)
    restorer = Restorer(None, Settings(device="cpu", backend=backend))
    assert (restorer.precision, restorer.backend) == expected
    assert restorer.runtime.why  # --verbose says why
    if expected[0] == "int8":
        assert feature in restorer.runtime.why
        assert restorer.model.session.get_modelmeta().custom_metadata_map["precision"] == "int8"


def test_a_twin_not_marked_for_auto_runs_only_when_asked_for(twin_registry, cpu_features):
    from dequant.restorer import Restorer, Settings

    twin_registry.write_text(twin_registry.read_text().replace("int8_auto = true\n", ""))
    cpu_features(False, "avx2")
    auto = Restorer(None, Settings(device="cpu"))
    assert auto.precision == "fp32" and "no int8 twin of this model for auto" in auto.runtime.why
    assert Restorer(None, Settings(device="cpu", precision="int8")).precision == "int8"


def test_int8_forced_refused_and_said(twin_registry, cpu_features, cli, tmp_path):
    from conftest import jpeg_bytes, photo
    from dequant.restorer import Restorer, Settings

    cpu_features(True, "avx2")
    assert Restorer(None, Settings(device="cpu", precision="int8")).precision == "int8"  # forced, even beside bf16
    with pytest.raises(ValueError, match="int8 computes with onnxruntime"):
        Restorer(None, Settings(device="cpu", precision="int8", backend="torch"))
    with pytest.raises(ValueError, match="no int8 twin"):
        Restorer(calibrated()[1], Settings(device="cpu", precision="int8"))  # a module: no registry, no twin
    cpu_features(False, None)  # forced where the CPU has no int8 dot products: it runs, and warns
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg_bytes(photo(48, 64), 20))
    code, _, err = cli("restore", source, "-o", tmp_path / "a.png", "--precision", "int8", "-v")
    assert code == 0 and "no int8 dot products: int8 may be slower" in err and "int8 (--precision), onnxruntime" in err


def test_export_int8_writes_the_twins_graph_which_restores_a_jpeg(twin_registry, cli, tmp_path):
    from conftest import jpeg_bytes, photo
    from dequant import images
    from dequant.restorer import Restorer, Settings

    code, out, err = cli("export", "-o", tmp_path / "tiny-int8.onnx", "--int8")
    assert code == 0, err
    assert b"tiny-int8" in out
    graph = onnx.load(tmp_path / "tiny-int8.onnx")
    onnx.checker.check_model(graph)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["precision"] == "int8" and meta["name"] == "tiny-int8"
    session = ort.InferenceSession(str(tmp_path / "tiny-int8.onnx"), providers=["CPUExecutionProvider"])
    picture = images.read(jpeg_bytes(photo(40, 56), 20))
    for height, width in ((40, 56), (24, 32)):  # dynamic sizes
        image = picture.pixels[:height, :width].transpose(2, 0, 1)[None].astype(np.float32)
        got = session.run(["restored"], {"image": image, "quality": np.array([20.0], np.float32)})[0]
        assert got.shape == image.shape
    restored = Restorer(None, Settings(device="cpu", precision="int8", consistent=False, tile=0))(picture).pixels
    whole = session.run(["restored"], {"image": picture.pixels.transpose(2, 0, 1)[None].astype(np.float32),
                                       "quality": np.array([20.0], np.float32)})[0][0].transpose(1, 2, 0)
    assert np.abs(whole - restored).max() <= 1 / 255 and np.abs(whole - picture.pixels).max() > 2 / 255
    code, _, err = cli("export", "tiny-int8", "-o", tmp_path / "again.onnx")  # the twin by name: int8 too
    assert code == 0, err
    assert (tmp_path / "again.onnx").read_bytes() == (tmp_path / "tiny-int8.onnx").read_bytes()
    code, _, err = cli("export", twin_registry.parent / "tiny.safetensors", "-o", tmp_path / "no.onnx", "--int8")
    assert code == 2 and "has no int8 twin" in err and not (tmp_path / "no.onnx").exists()


def test_int8_keeps_the_guarantees_tiles_metadata_alpha_gray_16_bit_and_batch_errors(twin_registry, cli, tmp_path):
    import io

    from PIL import Image

    from conftest import jpeg_bytes, photo
    from dequant import images
    from dequant.restorer import Restorer, Settings

    picture = images.read(jpeg_bytes(photo(130, 203, seed=3), 15))
    whole = Restorer(None, Settings(device="cpu", precision="int8", tile=0))(picture).pixels
    tiled = Restorer(None, Settings(device="cpu", precision="int8", tile=64))(picture).pixels
    assert np.abs(np.round(whole * 255) - np.round(tiled * 255)).max() <= 1
    folder = tmp_path / "in"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "dequant test camera"
    (folder / "exif.jpg").write_bytes(jpeg_bytes(photo(64, 96), 20, exif=exif.tobytes()))
    (folder / "gray.jpg").write_bytes(jpeg_bytes(photo().convert("L"), 10))
    rgba = photo(48, 48).convert("RGBA")
    alpha = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "alpha.png")
    deep = (np.asarray(photo().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")
    (folder / "cut.jpg").write_bytes(jpeg_bytes(photo(seed=3))[:200])
    code, _, err = cli("restore", folder, "-o", tmp_path / "out", "--precision", "int8")
    assert code == 1 and sum("cut.jpg" in line for line in err.splitlines()) == 1 and "Traceback" not in err
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "deep.png", "exif.png", "gray.png"]
    assert Image.open(out / "exif.png").getexif()[0x010F] == "dequant test camera"
    assert Image.open(out / "gray.png").mode == "L"
    assert np.array_equal(np.asarray(Image.open(out / "alpha.png").getchannel("A")), alpha)
    assert np.asarray(Image.open(out / "deep.png")).max() > 255


def test_bench_reports_each_rows_precision(twin_registry, cli, tmp_path):
    import json

    from conftest import photo

    photo(48, 64).save(tmp_path / "ref.png")
    code, _, err = cli("bench", "--data", tmp_path, "--quality", "20", "--metrics", "psnr", "--precision", "int8",
                       "--json", tmp_path / "r.json", "--markdown", tmp_path / "r.md")
    assert code == 0, err
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["precision"] for r in rows] == ["-", "int8"] and rows[1]["model"] == "tiny"
    assert "| tiny | int8 |" in (tmp_path / "r.md").read_text()


def test_a_clipped_range_leaves_out_the_outliers_that_a_min_max_range_keeps():
    values = torch.linspace(-1, 1, 10_000)
    values[7] = 40.0  # one outlier
    extremes, clipped = int8.Range(), int8.Range(clip=1e-3)
    extremes.observe(values)
    clipped.observe(values)
    assert float(extremes.high) == 40.0
    assert 0.99 < float(clipped.high) < 1.0 and -1.0 < float(clipped.low) < -0.99


def test_calibrated_ranges_are_the_widest_any_picture_needs_and_stay_fixed_in_training():
    model = archs.build("qunet", TINY)
    int8.prepare(model, clip=1e-3)
    pictures = [(torch.rand(1, 3, 32, 32) * scale, torch.tensor([50.0])) for scale in (0.5, 1.0)]
    int8.calibrate(model, pictures)
    first = model.head[1].input
    assert 0.99 < float(first.high) <= 1.0  # the brighter picture's range, less its outermost values
    calibrated = {k: v.clone() for k, v in model.state_dict().items() if k.endswith((".low", ".high"))}
    model.train()
    model(torch.rand(2, 3, 32, 32) * 3, torch.tensor([20.0, 80.0]))  # wider values: a moving range would follow
    assert all(torch.equal(value, model.state_dict()[k]) for k, value in calibrated.items())

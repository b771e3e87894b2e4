"""int8: fake quantization in torch computes what onnxruntime's int8 kernels compute from the exported graph."""

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


def test_every_convolution_runs_as_int8_in_onnxruntime_and_agrees_with_torch(tmp_path):
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
    assert np.abs(got - fake).max() <= 2 / 255  # the runtime's integer arithmetic, to a level or two
    assert 0 < np.abs(fake - exact).max() < 0.05  # rounded, still the same picture


def test_convolutions_kept_in_float_are_left_alone():
    model, _ = calibrated(keep_float=("head.1", "tail.0"))
    assert isinstance(model.head[1], torch.nn.Conv2d) and isinstance(model.tail[0], torch.nn.Conv2d)
    assert isinstance(model.down1, int8.QuantConv)


def test_quantization_aware_training_exports_weights_that_rebuild_their_int8_model(tmp_path):
    """train --set int8=true starts from float weights, trains with the rounding, and its exported file
    rebuilds the int8 model (ranges included) by itself."""
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
                                   "steps=2", "batch=2", "crop=48", "val_images=1", "val_every=2", "checkpoint_every=2"])
    exported = train.train(cfg, [tmp_path / "train"], [tmp_path / "val"], tmp_path / "run", False, "test", log=lambda _: None)
    model = loading.load_file_model(exported)
    assert isinstance(model.down1, int8.QuantConv) and isinstance(model.tail[0], torch.nn.Conv2d)
    assert float(model.down1.input.high) > float(model.down1.input.low)  # the ranges came with the weights

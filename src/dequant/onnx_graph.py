"""ONNX: every registry model as one graph, and onnxruntime as a restore backend.

The graph takes `image`, float32 N x 3 x H x W in [0, 1], any batch and size
(each generator pads to its own grid inside the graph and crops back), and,
for models conditioned on the JPEG quality, `quality`, float32 N (1-100, as
read from the file's luma table), or for models conditioned on the file's
tables, `tables`, float32 N x 128 (jpeg.table_features). It returns
`restored`, same shape, clamped to [0, 1].
"""

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from dequant import __version__, condition, files, int8

OPSET = 17
EXPORT_REVISION = 2  # part of the cache key: raise it when to_onnx writes a different graph for the same weights
INPUT_CONVENTION = ("image: float32 NCHW RGB in [0, 1], any N, H, W (padded to the model's grid inside the graph); "
                    "quality: float32 N, the JPEG quality 1-100 read from the file's luma table (IJG scale), "
                    "present only for quality-conditioned models; tables: float32 N x 128, log(step) / log(255) of the luma "
                    "then the chroma table in natural order, in place of quality for table-conditioned models; restored: float32 NCHW in [0, 1]")


def require():
    """The onnx and onnxruntime modules, or a one-line reason they are missing."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ValueError("ONNX needs onnx and onnxruntime: pip install onnx onnxruntime") from None
    return onnx, onnxruntime


class Graph(torch.nn.Module):
    """What the ONNX file computes: the generator, clamped to [0, 1]."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, told: torch.Tensor) -> torch.Tensor:
        return self.generator(image, told).clamp(0, 1)


def to_onnx(generator: torch.nn.Module, metadata: dict[str, str]) -> bytes:
    """The ONNX model bytes of a generator, with `metadata` in its metadata_props, checked."""
    onnx, _ = require()
    graph = Graph(generator).eval()
    # Batch 2, so that nothing specialises on 1; what a quality- or table-conditioned generator is told.
    kind = generator.contract.condition
    image = torch.rand(2, 3, 40, 56)
    told = torch.cat([condition.batch(condition.of(kind, q, None, False, image[0].permute(1, 2, 0).numpy()))
                      for q in (30, 60)])
    name = "quality" if kind == "quality" else "tables"
    example = (image, told)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter: the dynamo one cannot yet export the pad-to-grid arithmetic on
        # symbolic sizes ("Cannot create Dim with inconsistent min"), measured with torch 2.13.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example, buffer, dynamo=False, opset_version=OPSET,
                          input_names=["image", name], output_names=["restored"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, name: {0: "batch"},
                                        "restored": {0: "batch", 2: "height", 3: "width"}})
    graph.eval()  # the exporter restores the wrapper's training flag, which reaches the generator
    model = shuffle_before_dequantizing(onnx.load_from_string(buffer.getvalue()))
    inputs = [i.name for i in model.graph.input]
    precision = "int8" if int8.is_quantized(generator) else "fp32"  # int8: QDQ around what it rounds
    metadata = {**metadata, "inputs": ",".join(inputs), "uses_quality": str("quality" in inputs).lower(),
                "precision": precision}
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def shuffle_before_dequantizing(model):
    """DequantizeLinear -> DepthToSpace becomes DepthToSpace -> DequantizeLinear (int8 graphs): the same values
    (per-tensor levels commute with moving pixels), a quarter of the bytes moved (measured ~3 % of an int8 restore)."""
    from onnx import helper

    nodes = list(model.graph.node)
    producer = {output: i for i, node in enumerate(nodes) for output in node.output}
    readers = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for i, node in enumerate(nodes):
        j = producer.get(node.input[0]) if node.op_type == "DepthToSpace" else None
        if j is None or nodes[j].op_type != "DequantizeLinear" or nodes[j].attribute or readers[node.input[0]] != 1:
            continue  # only a per-tensor dequantization (no axis) read by the shuffle alone
        dequantize, levels = nodes[j], node.output[0] + "_levels"
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes[j] = helper.make_node("DepthToSpace", [dequantize.input[0]], [levels], name=node.name, **attributes)
        nodes[i] = helper.make_node("DequantizeLinear", [levels, *dequantize.input[1:]], list(node.output),
                                           name=dequantize.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dequant" / "onnx"


def cached_graph(generator: torch.nn.Module) -> bytes:
    """The generator's ONNX bytes, exported once per weights, torch and dequant version, then read from
    the cache (an export takes about a second, a one-image restore less). No cache where it cannot be written."""
    # The modules' description too: the same weights can make different graphs (dequant.int8's float convolutions).
    key = hashlib.sha256(f"{generator!r} {torch.__version__} {__version__} {OPSET} {EXPORT_REVISION}".encode())
    for name, tensor in sorted(generator.state_dict().items()):
        key.update(name.encode())
        key.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = cache_dir() / f"{key.hexdigest()}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = to_onnx(generator, {})
    try:
        files.write_atomic(path, data)
    except OSError:
        pass
    return data


def export_metadata(name: str, entry, weights_sha256: str | None) -> dict[str, str]:
    """What a reader of the file needs: the model, its provenance, the input convention, the licence."""
    return {
        "name": name, "producer": f"dequant {__version__}", "version": __version__,
        "arch": entry.arch if entry else "", "config": json.dumps(entry.config) if entry else "",
        "weights_sha256": weights_sha256 or "", "input_convention": INPUT_CONVENTION,
        "license": "MIT (dequant and its trained weights)",
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OnnxGenerator:
    """An exported graph run by onnxruntime, called like the torch generators: (tiles, quality) -> tiles."""

    def __init__(self, model: bytes, device: torch.device, threads: int, contract):
        _, ort = require()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Its threads sleep after a run instead of spinning: the projection into the file's cells runs next on the
        # same cores (measured: 0.14 -> 0.07 s/MP for the projection, about 4 % off a LIVE1 restore on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.contract = contract  # the exported generator's

    def __call__(self, image: torch.Tensor, told: torch.Tensor) -> torch.Tensor:
        """told: the quality (N), or the tables' features (N x 128, or x 131 with the content's) for a
        table-conditioned graph."""
        feed = {"image": np.ascontiguousarray(image.cpu().numpy(), dtype=np.float32)}
        for name in ("quality", "tables"):
            if name in self.inputs:  # the exporter drops inputs a model never reads
                feed[name] = np.ascontiguousarray(told.cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["restored"], feed)[0])

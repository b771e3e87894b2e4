"""Generator architectures: one module each, keyword-only hyperparameters.

`ARCHS` is the one table from a registry `arch` name to its class.

Adding an architecture: a module here with an `nn.Module` whose `forward(image, condition)` takes
(B, 3, H, W) in [0, 1] and returns the restored batch, and whose `contract` (a `Contract`, a class
attribute or a property) says what callers must know; then a row in ARCHS, and `tests/test_archs.py`
builds it with every other architecture. Nothing else needs to learn about it: restore, train,
validation, bench and ONNX read the contract, and `dequant.condition.of` computes what it is told.
"""

from torch import nn

from dequant.archs.arcnn_plus import ArcnnPlus
from dequant.archs.ced import CED
from dequant.archs.common import Contract  # noqa: F401 (the contract every generator declares)
from dequant.archs.dequantizernet import DequantizerNet
from dequant.archs.galteri import Galteri
from dequant.archs.hourglass import HourglassUNet
from dequant.archs.qunet import QUNet

ARCHS: dict[str, type[nn.Module]] = {
    "qunet": QUNet,
    "hourglass": HourglassUNet,
    "dequantizernet": DequantizerNet,
    "arcnn-plus": ArcnnPlus,
    "galteri": Galteri,
    "ced": CED,
}


def build(arch: str, config: dict) -> nn.Module:
    """Build an untrained generator from its registry name and hyperparameters."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHS))})")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return ARCHS[arch](**config)

"""Generator architectures: one module each, keyword-only hyperparameters.

`ARCHS` is the one table from a registry `arch` name to its class.
"""

from torch import nn

from dequant.archs.arcnn_plus import ArcnnPlus
from dequant.archs.ced import CED
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

"""What a generator is told about a picture: computed here and nowhere else, for restore, training,
validation, bench and the ONNX graph alike.

A generator's contract (dequant.archs.Contract) names its condition: `quality`, the IJG quality the file's
luma table reads (one number), or `tables`, the file's quantization tables as jpeg.table_features (128
numbers); a generator with `none` is passed the quality and ignores it.
"""

import numpy as np
import torch

from dequant import jpeg


def of(kind: str, quality: float, tables: tuple | None, gray: bool) -> np.ndarray:
    """The condition of one picture: float32, shape () for a quality, (128,) for tables.

    `tables`: the file's (luma, chroma) tables; None where it has none or the strength is forced,
    and then libjpeg's at `quality` stand in. A gray file's one table serves for both.
    """
    if kind == "tables":
        luma, chroma = tables if tables else jpeg.ijg_tables(int(quality))
        return jpeg.table_features(luma, None if gray else chroma)
    return np.float32(quality)


def batch(condition: np.ndarray, size: int = 1) -> torch.Tensor:
    """One picture's condition repeated for a batch of `size` (its tiles, say): (size,) or (size, 128)."""
    single = torch.from_numpy(np.asarray(condition, dtype=np.float32))
    return single.expand(size, *single.shape)

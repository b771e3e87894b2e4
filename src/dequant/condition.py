"""What a generator is told about a picture: computed here and nowhere else, for restore, training,
validation, bench and the ONNX graph alike.

A generator's contract (dequant.archs.Contract) names its condition: `quality`, the IJG quality the file's
luma table reads (one number), `tables`, the file's quantization tables as jpeg.table_features (128
numbers), or `tables+content`, those and what kind of picture the decoded pixels look like (content_features:
3 more); a generator with `none` is passed the quality and ignores it.
"""

import numpy as np
import torch

from dequant import jpeg


CONTENT_FEATURES = 3
# The shares are told x16: Adam moves each weight by about the learning rate per step, so the zero-initialised
# weights of three inputs in [0, 1] take thousands of steps to matter next to the tables' 128. Measured: told
# as they are, after 2000 steps those weights were 0.002 (the tables' 0.05) and the photos had not moved.
CONTENT_SCALE = 16.0
SHARP_STEP = 64  # levels between neighbours: an edge of text or graphics rather than of a photographed object


def content_features(pixels: np.ndarray) -> np.ndarray:
    """What kind of picture the decoded JPEG looks like, as three shares in [0, 1]: 8x8 blocks of one flat
    colour, neighbours (left to right) of equal colour, and sharp steps between neighbours. Screenshots, text
    and graphics score high, photographs low. A network told this can keep a photograph's fine texture apart
    from a screenshot's flat areas and hard edges: trained on both without it, the default gained on
    screenshots and lost 0.17 dB on BSDS500-val photos, and photos alone lost nothing (measured).

    `pixels`: HxW(xC), uint8 levels or floats in [0, 1].
    """
    levels = pixels if pixels.dtype == np.uint8 else np.round(np.clip(pixels, 0, 1) * 255)
    levels = levels.astype(np.int16).reshape(*levels.shape[:2], -1)
    height, width = levels.shape[0] // 8 * 8, levels.shape[1] // 8 * 8
    blocks = levels[:height, :width].reshape(height // 8, 8, width // 8, 8, levels.shape[2])
    flat = (blocks.max(axis=(1, 3)) == blocks.min(axis=(1, 3))).all(axis=-1)
    steps = np.abs(np.diff(levels, axis=1)).max(axis=-1)
    shares = [flat.mean() if flat.size else 0.0, (steps == 0).mean() if steps.size else 0.0,
              (steps > SHARP_STEP).mean() if steps.size else 0.0]
    return np.float32(shares)


def of(kind: str, quality: float, tables: tuple | None, gray: bool, pixels: np.ndarray | None = None) -> np.ndarray:
    """The condition of one picture: float32, shape () for a quality, (128,) for tables, (131,) for
    tables+content (which needs the decoded `pixels`: the whole picture, even where it is restored in tiles).

    `tables`: the file's (luma, chroma) tables; None where it has none or the strength is forced,
    and then libjpeg's at `quality` stand in. A gray file's one table serves for both.
    """
    if kind in ("tables", "tables+content"):
        luma, chroma = tables if tables else jpeg.ijg_tables(int(quality))
        features = jpeg.table_features(luma, None if gray else chroma)
        if kind == "tables":
            return features
        if pixels is None:
            raise ValueError("a tables+content condition needs the picture's pixels")
        return np.concatenate([features, CONTENT_SCALE * content_features(pixels)]).astype(np.float32)
    return np.float32(quality)


def batch(condition: np.ndarray, size: int = 1) -> torch.Tensor:
    """One picture's condition repeated for a batch of `size` (its tiles, say): (size,) or (size, 128)."""
    single = torch.from_numpy(np.asarray(condition, dtype=np.float32))
    return single.expand(size, *single.shape)

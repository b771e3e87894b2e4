"""Tiled inference: memory bounded by the tile, output equal to the whole-image run.

The image is partitioned into cores whose edges lie on the 16-pixel grid (so
8x8 blocks and 4:2:0 chroma blocks fall in a tile exactly as in the file).
Each tile is its core widened by `overlap` pixels of context on every side;
only the core of each output is kept, so there is nothing to blend and, with
enough context, no seam.
"""

from collections import defaultdict
from typing import Callable

import torch

GRID = 16  # JPEG macroblock: 8x8 luma blocks, 16x16 for 4:2:0 chroma


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (tile_start, tile_end, core_start, core_end) covering [0, length)."""
    if tile <= 0 or tile >= length:
        return [(0, length, 0, length)]
    assert tile % GRID == 0 and overlap % GRID == 0, "tiles and overlap follow the 16-pixel grid"
    result = []
    for core_start in range(0, length, tile):
        core_end = min(core_start + tile, length)
        result.append((max(core_start - overlap, 0), min(core_end + overlap, length), core_start, core_end))
    return result


def align(n: int) -> int:
    """Round a tile size or overlap up to the grid."""
    return -(-n // GRID) * GRID


Model = Callable[[torch.Tensor], torch.Tensor]


def run_tiled(model: Model, image: torch.Tensor, *, tile: int, overlap: int, batch: int = 4) -> torch.Tensor:
    """Apply `model` to a (1, C, H, W) image tile by tile; tiles of equal shape run batched."""
    tile, overlap = (align(tile), align(overlap)) if tile > 0 else (0, 0)
    height, width = image.shape[-2:]
    if tile <= 0 or tile >= max(height, width):  # one tile: no copies in or out
        return model(image.contiguous())
    output = torch.empty_like(image)
    by_shape = defaultdict(list)
    for ys in spans(height, tile, overlap):
        for xs in spans(width, tile, overlap):
            by_shape[(ys[1] - ys[0], xs[1] - xs[0])].append((ys, xs))
    for placements in by_shape.values():
        for i in range(0, len(placements), batch):
            group = placements[i : i + batch]
            tiles = torch.cat([image[..., y0:y1, x0:x1] for (y0, y1, _, _), (x0, x1, _, _) in group])
            restored = model(tiles)
            for out, ((y0, _, cy0, cy1), (x0, _, cx0, cx1)) in zip(restored, group):
                output[0, :, cy0:cy1, cx0:cx1] = out[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return output

"""File-consistent output: keep a restoration inside the quantization cells of the file's coefficients.

For a single save, every DCT coefficient of the original lay in the cell [(c - 1/2) q, (c + 1/2) q] of the
file's quantized coefficient c and table step q (per component, at the component's coded resolution).
`project` moves a restoration into those cells, which can only bring it closer to such an original in the
coded YCbCr planes: the network may restore detail, but never contradict what the file says.

How each plane is projected: the restoration is converted to YCbCr (JFIF, full range), padded as the encoder
padded (edge pixels repeated to whole MCUs) and box-averaged down to the component's coded resolution as
libjpeg's encoder does; each 8x8 block's DCT is clipped into its cells; the change is brought back to full
resolution by repeating each coded pixel over the pixels it stands for, which keeps the box average, and so
the coefficients, where the clipping put them. `widen` scales the cells (for files whose original was not
in the last save's cells: saved before on another grid).

The coefficients are read exactly with libjpeg (the `jpeglib` binding): baseline and progressive files,
restart markers, any sampling factors. Where they cannot be read, `read` says why (CoefficientsError).
"""

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dequant import jpeg


class CoefficientsError(Exception):
    """A JPEG whose coefficients cannot be read or used, with the reason."""


@dataclass(frozen=True)
class Coefficients:
    """A JPEG's quantized DCT coefficients as the file stores them."""

    blocks: tuple  # per component: (block rows, block columns, 8, 8) int16, natural order (vertical, horizontal frequency)
    steps: tuple  # per component: (8, 8) quantization table, natural order
    factors: tuple  # per component: (vertical, horizontal) pixels per coded sample, e.g. (2, 2) for 4:2:0 chroma


@contextlib.contextmanager
def libjpeg_messages():
    """Collects what libjpeg writes to the process's stderr (its warnings on damaged files, its errors) into the
    yielded list of lines, instead of letting it reach the terminal: dequant's own lines say what matters."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            said += capture.read().decode(errors="replace").splitlines()


def read(source: "Path | bytes") -> Coefficients:
    """The coefficients of a JPEG file (a path or its bytes). CoefficientsError says why they cannot be used."""
    try:
        import jpeglib
    except ImportError:
        raise CoefficientsError("the jpeglib package is not installed (pip install jpeglib)") from None
    if isinstance(source, bytes):
        with tempfile.TemporaryDirectory() as folder:  # jpeglib reads from a path only
            path = Path(folder) / "in.jpg"
            path.write_bytes(source)
            return read(path)
    try:
        with libjpeg_messages() as said:
            stored = jpeglib.read_dct(os.fspath(source))
            stored.load()
    except Exception as error:  # libjpeg's errors come as several kinds
        reason = said[-1] if said else str(error) or error.__class__.__name__
        raise CoefficientsError(f"libjpeg could not read the coefficients ({reason})") from None
    components = [stored.Y] + ([stored.Cb, stored.Cr] if stored.has_chrominance else [])
    if stored.has_black or stored.num_components != len(components):
        raise CoefficientsError(f"{stored.num_components}-component JPEG (CMYK or other): only gray and YCbCr files")
    sampling = np.asarray(stored.samp_factor).reshape(-1, 2)  # (vertical, horizontal) per component
    top = sampling.max(axis=0)
    if np.any(top % sampling):
        raise CoefficientsError(f"sampling factors {sampling.tolist()} do not divide evenly")
    steps = [np.asarray(stored.qt[number], dtype=np.float32) for number in np.asarray(stored.quant_tbl_no).reshape(-1)]
    return Coefficients(tuple(np.asarray(c) for c in components), tuple(steps),
                        tuple(tuple(int(f) for f in top // s) for s in sampling))


DCT = jpeg.dct_matrix()  # JPEG's FDCT of a block is DCT @ block @ DCT.T
# The same on a block flattened row by row: block.ravel() @ BLOCK_DCT.T. One large matrix product over all
# blocks instead of two tiny ones per block, in float32 (errors ~1e-4 of a level), in torch: NumPy's
# OpenBLAS threads keep spinning after a product and slowed the onnxruntime run that follows by 7-13 %.
# 0.23 s/MP in float64 NumPy, 0.08 now (LIVE1, AMD EPYC AVX2, 2 threads).
BLOCK_DCT = torch.from_numpy(np.kron(DCT, DCT).astype(np.float32))

# JFIF's full-range YCbCr (what libjpeg converts with).
TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
TO_RGB = np.linalg.inv(TO_YCBCR)
OFFSET = np.array([0.0, 128.0, 128.0])


def plane_change(plane: torch.Tensor, blocks: np.ndarray, steps: np.ndarray, factors: tuple, widen: float) -> torch.Tensor:
    """What to add to `plane` (H x W, 0-255 scale) to put its coded samples' DCT into the cells."""
    rows, columns = blocks.shape[:2]
    fy, fx = factors
    height, width = plane.shape
    full_h, full_w = rows * 8 * fy, columns * 8 * fx  # the whole MCUs the encoder coded
    padded = F.pad(plane[None], (0, max(0, full_w - width), 0, max(0, full_h - height)), mode="replicate")[0]
    padded = padded[:full_h, :full_w]
    coded = (padded if fy == fx == 1 else padded.reshape(rows * 8, fy, columns * 8, fx).mean(dim=(1, 3))) - 128
    spectrum = coded.reshape(rows, 8, columns, 8).transpose(1, 2).reshape(-1, 64) @ BLOCK_DCT.T
    centre = torch.from_numpy((blocks * steps).reshape(-1, 64))
    half = torch.from_numpy((np.float32(widen / 2) * steps).reshape(64))
    change = torch.clamp(spectrum, centre - half, centre + half).sub_(spectrum)
    change = (change @ BLOCK_DCT).reshape(rows, columns, 8, 8).transpose(1, 2).reshape(rows * 8, columns * 8)
    if fy > 1 or fx > 1:  # a subsampled component: each coded sample stands for fy x fx pixels
        change = change.repeat_interleave(fy, dim=0).repeat_interleave(fx, dim=1)
    return change[:height, :width]


def project(pixels: np.ndarray, coefficients: Coefficients, widen: float = 1.0) -> np.ndarray:
    """HxWxC float pixels in [0, 1] (C = 1 for a gray file's luma, 3 for RGB) moved into the file's cells."""
    components = len(coefficients.blocks)
    if (pixels.shape[2] == 1) != (components == 1):
        raise CoefficientsError(f"{pixels.shape[2]} channels against {components} coded components")
    height, width, channels = pixels.shape
    flat = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).reshape(-1, channels)
    if components == 1:
        planes = flat.T * 255
    else:
        planes = (flat @ torch.from_numpy(255 * TO_YCBCR.T).float() + torch.from_numpy(OFFSET).float()).T
    change = torch.stack([plane_change(planes[k].reshape(height, width), coefficients.blocks[k], coefficients.steps[k],
                                       coefficients.factors[k], widen).reshape(-1) for k in range(components)], dim=1)
    # The colour conversion is linear: the change converts back on its own.
    back = change / 255 if components == 1 else change @ torch.from_numpy(TO_RGB.T / 255).float()
    return back.add_(flat).clamp_(0, 1).reshape(height, width, channels).numpy()


def keep_uniform_areas(decoded: np.ndarray, restored: np.ndarray, reach: int = 3) -> np.ndarray:
    """`restored` with each 8x8 block that decodes to one colour, amid blocks of that same colour as far as
    `reach` blocks each way, put back as decoded (HxWxC floats in [0, 1], blocks on the JPEG grid from the top
    left; beyond the picture's edge counts as more of the same).

    Why: inside such an area the file says only that the colour lies in its cell, and the decoded colour, the
    cell's centre, is the best guess there is; the network, taught on photographs, moved it (measured on
    val screenshots, today's default kept in the cells: 3 of 52 lost 12-25 dB where the JPEG was exact or
    nearly so, a page of one brown 1.4-3.7 dB). Put back, none of the 52 loses at qualities 10-90, their
    mean up 0.2-0.5 dB. Why a reach of 3 (a 56-pixel square): with 1, a photograph's smooth sky at
    quality 10 came back as decoded too, where the network had restored a gradient (LIVE1 Q10 -0.018 dB);
    with 3, -0.001, and the same on screenshots. Edges and texture keep what the network made."""
    rows, columns = decoded.shape[0] // 8, decoded.shape[1] // 8
    if rows == 0 or columns == 0:
        return restored
    blocks = decoded[: rows * 8, : columns * 8].reshape(rows, 8, columns, 8, -1)
    corner = blocks[:, :1, :, :1]
    one_colour = (blocks == corner).all(axis=(1, 3, 4))
    colour = corner[:, 0, :, 0]
    kept = one_colour.copy()
    padded_one = np.pad(one_colour, reach, mode="edge")
    padded_colour = np.pad(colour, ((reach, reach), (reach, reach), (0, 0)), mode="edge")
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            kept &= padded_one[dy : dy + rows, dx : dx + columns]
            kept &= (padded_colour[dy : dy + rows, dx : dx + columns] == colour).all(axis=-1)
    mask = np.repeat(np.repeat(kept, 8, axis=0), 8, axis=1)
    result = restored.copy()
    result[: rows * 8, : columns * 8][mask] = decoded[: rows * 8, : columns * 8][mask]
    return result


def saved_harsher_before(decoded: np.ndarray, coefficients: Coefficients) -> bool:
    """Whether the decoded picture (HxWxC floats in [0, 1]) shows an earlier save, harsher than the file's
    (jpeg.saved_harsher_before): its original is then not in the file's cells. Measured on 20 val photos saved
    at 10, 10, 30 and again at 30, 50, 50 (restored by today's default): on a grid 4 pixels off the cells cost
    0.16, 0.35, 0.04 dB on average (up to 0.82); saved again on the same grid, 0.27, 0.59, 0.12 (up to 1.26)."""
    luma = decoded[..., 0] if decoded.shape[2] == 1 else decoded
    return jpeg.saved_harsher_before(np.round(luma * 255), coefficients.steps[0])


def keep(decoded: np.ndarray, restored: np.ndarray, coefficients: Coefficients | None = None) -> tuple[np.ndarray, str]:
    """What the file allows of `restored`: its uniform areas as `decoded`, then, given the file's
    coefficients, inside their cells unless an earlier, harsher save shows (restore's last step, and what
    val scores); and a word on what was done."""
    kept = keep_uniform_areas(decoded, restored)
    if coefficients is None:
        return kept, "uniform areas kept"
    if saved_harsher_before(decoded, coefficients):
        return kept, "cells not kept: an earlier, harsher save shows"
    return project(kept, coefficients), "kept in the file's cells"

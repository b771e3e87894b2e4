"""JPEG facts: quality from quantization tables, blind quality from pixels, encoding.

Everything here is libjpeg's (IJG) convention, which is what Pillow, OpenCV
and most software write, and what the field's benchmarks use.
"""

import io
from functools import lru_cache

import numpy as np
from PIL import Image

# The IJG base tables (JPEG standard, Annex K), natural row-major order as Pillow gives them.
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])  # fmt: skip
IJG_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32)  # fmt: skip
# mozjpeg's default tables (its quant table 3, N. Robidoux's for ImageMagick), luma and chroma alike.
MOZJPEG = np.array([
    16, 16, 16, 18, 25, 37, 56, 85, 16, 17, 20, 27, 34, 40, 53, 75,
    16, 20, 24, 31, 43, 62, 91, 135, 18, 27, 31, 40, 53, 74, 106, 156,
    25, 34, 43, 53, 69, 94, 131, 189, 37, 40, 62, 74, 94, 124, 169, 238,
    56, 53, 91, 106, 131, 169, 226, 311, 85, 75, 135, 156, 189, 238, 311, 418,
])  # fmt: skip

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def ijg_table(quality: int, base: np.ndarray = IJG_LUMA) -> np.ndarray:
    """The quantization table libjpeg writes for `quality` (1..100), baseline-clipped."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """libjpeg's (luma, chroma) tables for `quality`."""
    return ijg_table(quality), ijg_table(quality, IJG_CHROMA)


@lru_cache(maxsize=1)
def _all_luma_tables() -> np.ndarray:
    return np.stack([ijg_table(q) for q in range(1, 101)]).astype(np.float64)


def table_features(luma, chroma=None) -> np.ndarray:
    """A file's quantization tables as 128 numbers in [0, 1] (log step / log 255), luma then chroma:
    what a generator conditioned on the tables sees. A gray file's only table serves as both."""
    chroma = luma if chroma is None else chroma
    steps = np.concatenate([np.asarray(luma).reshape(64), np.asarray(chroma).reshape(64)])
    return (np.log(np.clip(steps, 1, 255)) / np.log(255)).astype(np.float32)


def quality_from_table(table) -> int:
    """The IJG quality whose luma table is closest (in log steps) to `table`.

    Works for non-IJG tables too, giving the quality of similar strength.
    """
    table = np.asarray(table, dtype=np.float64).reshape(64)
    distance = np.abs(np.log(_all_luma_tables()) - np.log(np.maximum(table, 1))).sum(axis=1)
    return int(np.argmin(distance)) + 1


def file_tables(image: Image.Image) -> tuple | None:
    """A JPEG's (luma, chroma) tables as Pillow read them (chroma None in a one-table file); None if not a JPEG."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    ids = sorted(tables)
    return tuple(tables[ids[0]]), (tuple(tables[ids[1]]) if len(ids) > 1 else None)


def file_quality(image: Image.Image) -> int | None:
    """The quality of a JPEG read by Pillow, from its luma table; None if not a JPEG."""
    tables = file_tables(image)
    return quality_from_table(tables[0]) if tables else None


def _luma(pixels: np.ndarray) -> np.ndarray:
    """JPEG's (full-range BT.601) luma of an HxW or HxWxC uint8 array, level-shifted."""
    if pixels.ndim == 2:
        return pixels.astype(np.float64) - 128
    rgb = pixels[..., :3].astype(np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114]) - 128


def dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II: JPEG's FDCT of a block is D @ block @ D.T."""
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    m = np.cos((2 * n + 1) * k * np.pi / 16) * np.sqrt(2 / 8)
    m[0] /= np.sqrt(2)
    return m


def _grid_offset(y: np.ndarray, axis: int) -> int:
    """Where the 8-pixel block grid starts along an axis: the offset with the largest steps."""
    steps = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)
    strength = [steps[(o - 1) % 8 :: 8].mean() for o in range(8)]
    return int(np.argmax(strength))


def blind_quality(pixels: np.ndarray) -> int:
    """The JPEG quality a decoded image went through (lattice_quality), or a typical web quality, 75,
    where the image is too small or flat to measure."""
    measured = lattice_quality(pixels)
    return 75 if measured is None else measured


def lattice_quality(pixels: np.ndarray) -> int | None:
    """Estimate the JPEG quality a decoded image went through, from its pixels alone; None if it cannot.

    JPEG stores each 8x8 block's DCT coefficients as multiples of a quantization
    step, so the DCT of decoded pixels lands within rounding noise of those
    multiples. Each IJG quality is scored by the log-likelihood of the low
    frequency coefficients under "a multiple of my step plus noise" against
    "anywhere", with a floor for outliers (clipped pixels). Too fine a step
    gains nothing (everything is near one of its multiples); too coarse a
    step loses heavily on every coefficient that falls between its multiples.
    Coefficients near zero fit every step and are left out. A central crop of
    at most 1040x1040 pixels is plenty, and keeps the work small for any image.
    """
    y = _luma(_central_crop(pixels, 1040))
    if min(y.shape) < 16:
        return None  # too small to measure anything
    scores = _lattice_scores(_block_dct(y, _grid_offset(y, 0), _grid_offset(y, 1)), _all_luma_tables()[:, LOW], 1.0)
    return None if scores is None else int(np.argmax(scores)) + 1  # None: flat image, nothing to measure


LOW = [1, 8, 9, 2, 16, 10, 17, 3, 24]  # the first AC frequencies in zig-zag order


def _central_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    """At most side x side pixels from the middle, starting on the file's 8-pixel grid."""
    top, left = max(0, (pixels.shape[0] - side) // 16 * 8), max(0, (pixels.shape[1] - side) // 16 * 8)
    return pixels[top : top + side, left : left + side]


def _blocks(y: np.ndarray, top: int, left: int) -> np.ndarray:
    """The whole 8x8 blocks (rows, columns, 8, 8) of a grid starting at (top, left)."""
    y = y[top:, left:]
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    return y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)


def _block_dct(y: np.ndarray, top: int, left: int) -> np.ndarray:
    """The low-frequency DCT coefficients (N, len(LOW)) of the 8x8 blocks of a grid starting at (top, left)."""
    d = dct_matrix()
    return (d @ _blocks(y, top, left) @ d.T).reshape(-1, 64)[:, LOW]


def _lattice_scores(coefficients: np.ndarray, steps: np.ndarray, noise: float, most: int | None = None,
                    outliers: float = 0.05) -> np.ndarray | None:
    """Per row of `steps` (tables, len(LOW)): the mean log-likelihood ratio of the coefficients (N, len(LOW))
    under "a multiple of the step plus Gaussian noise" against "anywhere" (see lattice_quality); None when
    fewer than 64 coefficients stand clear of the noise. `most` caps how many are scored."""
    informative = np.abs(coefficients) > 3 * noise
    if informative.sum() < 64:
        return None
    c = coefficients[informative][None, :most]  # (1, K)
    steps = steps[:, np.nonzero(informative)[1][:most]]  # (tables, K)
    residual = c - np.round(c / steps) * steps
    near = sum(np.exp(-0.5 * ((residual + m * steps) / noise) ** 2) for m in (-1, 0, 1))
    lattice = steps * near / (noise * np.sqrt(2 * np.pi))  # density relative to "anywhere"
    return np.log((1 - outliers) * lattice + outliers).mean(axis=1)


# Files at this quality or above are left as decoded when their pixels show no earlier, harsher save.
# Measured on val (dequant-long step 24000): re-saved at 95, every image lost (-0.2 to -11 dB, mean -2.7;
# at 93 mean +0.76, at 92 +1.4); val images halved (no JPEG trace) then saved at 95 gained +0.18 on
# average but down to -0.47. The lattice estimate reads 86-92 on such clean saves (100 val images, 40
# halved; it tops out at 92) and QF1 on most double saves X>95 for X from 10 to 75 (74 for 75), where
# the generator still runs; a picture too flat to measure shows no trace either.
NEARLY_LOSSLESS = 95
NO_EARLIER_SAVE = 80


def shows_harsh_save(pixels: np.ndarray) -> bool:
    """Whether decoded pixels keep the lattice of a save at NO_EARLIER_SAVE or harsher (a flat picture keeps none)."""
    measured = lattice_quality(pixels)
    return measured is not None and measured <= NO_EARLIER_SAVE


# An earlier, harsher save leaves the original outside the last save's cells. Measured on val (BSDS500-val and
# CID22 photos saved once and twice, val screenshots and generated content saved once), on the file's own grid
# (a JPEG opened and saved again):
# - quantizing the decoded picture with a coarser IJG table (COARSER x its steps), then with the last, gives the
#   file's own nonzero low-frequency coefficients in more than ALIGNED_AGREEMENT of them: single saves of photos
#   0.60 at most, of screenshots and generated content 0.83; double saves 10>30, 30>50 0.89 and up (median 0.97),
#   10>50, 20>75 0.75-0.80 and up (0.93), 50>90 0.62 and up (0.84: found in fewer than half).
# On another block grid (FBCNN's double-JPEG protocol: saved, cropped by 4 pixels, saved again), two steps:
# - the lattice of an IJG table coarser than the last (COARSER x its steps) fits on some other grid better
#   than on the median grid, by more than ELSEWHERE_CONTRAST nats per coefficient (the last save's rounding
#   is noise there, of about its step over sqrt(12)); single saves of photos reach 0.39, of screenshots,
#   dithering and charts up to 1.9;
# - and that earlier save explains the file: the decoded picture, quantized on that grid with that table and
#   then with the last table on the file's grid, gives the file's own coefficients (those nonzero in either)
#   more often, by ELSEWHERE_MARGIN, than quantized so on other grids. Double saves 0.19-0.65 above; single
#   saves of dithering, charts and pages, whose every grid explains them about as well, 0.02 or less.
COARSER = 1.5
ELSEWHERE_CONTRAST = 0.15
ELSEWHERE_MARGIN = 0.1
ALIGNED_AGREEMENT = 0.9


def saved_harsher_before(pixels: np.ndarray, luma_steps: np.ndarray) -> bool:
    """Whether decoded pixels show an earlier save, harsher than the last (whose luma table is `luma_steps`,
    8x8 natural order), on the file's block grid or another (see ALIGNED_AGREEMENT)."""
    y = _luma(_central_crop(pixels, 512))
    if min(y.shape) < 16:
        return False  # too small to measure anything
    last = np.asarray(luma_steps, dtype=np.float64).reshape(64)
    if _aligned_agreement(y, last) > ALIGNED_AGREEMENT:
        return True
    contrast, margin = _elsewhere(y, last)
    return contrast > ELSEWHERE_CONTRAST and margin > ELSEWHERE_MARGIN


def _aligned_agreement(y: np.ndarray, last: np.ndarray) -> float:
    """The largest share of the file's low-frequency coefficients (nonzero in the file or in the trial) that a
    coarser IJG table's quantization, then the last table (64 steps), gives as the file has them, on the
    file's grid of the decoded luma `y`."""
    last = last[LOW]
    coefficients = _block_dct(y, 0, 0)
    file = np.round(coefficients / last)
    if np.count_nonzero(file) < 64:
        return 0.0  # flat: nothing to find
    best = 0.0
    for earlier in _all_luma_tables()[:, LOW]:
        if (earlier >= COARSER * last).all():
            again = np.round(np.round(coefficients / earlier) * earlier / last)
            best = max(best, float((again == file)[(file != 0) | (again != 0)].mean()))
    return best


def _elsewhere(y: np.ndarray, last: np.ndarray) -> tuple[float, float]:
    """(contrast, margin) of the best earlier save on another grid of the decoded luma `y`, the last table
    having 64 steps `last`; (0, 0) where none can be measured."""
    noise = max(1.0, float(np.sqrt((last[LOW] ** 2).mean() / 12)))
    qualities = np.arange(1, 101)[::2]  # every other quality: the noise blurs their difference anyway
    coarser = (_all_luma_tables()[qualities - 1][:, LOW] >= COARSER * last[LOW]).all(axis=1)
    qualities = qualities[coarser]
    if len(qualities) == 0:
        return 0.0, 0.0
    tables = _all_luma_tables()[qualities - 1][:, LOW]
    scores = {}
    for top in range(8):
        for left in range(8):
            found = _lattice_scores(_block_dct(y, top, left), tables, noise, most=1024)
            if found is None:
                return 0.0, 0.0  # flat: nothing to find
            scores[top, left] = found
    median = np.median(np.stack(list(scores.values())), axis=0)
    contrast, grid, best = max(((s - median).max(), grid, int(np.argmax(s - median)))
                               for grid, s in scores.items() if grid != (0, 0))
    near = range(max(1, qualities[best] - 1), qualities[best] + 2)  # the skipped neighbours too
    earlier = max((ijg_table(q).astype(np.float64) for q in near), key=lambda table: _agreement(y, grid, table, last))
    others = {((grid[0] + dy) % 8, (grid[1] + dx) % 8) for dy, dx in ((0, 4), (4, 0), (4, 4), (2, 2), (6, 6))} - {(0, 0)}
    baseline = max(_agreement(y, other, earlier, last) for other in others)
    return float(contrast), _agreement(y, grid, earlier, last) - baseline


def _agreement(y: np.ndarray, grid: tuple, earlier: np.ndarray, last: np.ndarray) -> float:
    """How much of the file an earlier save on `grid` with table `earlier` explains: the share of the
    coefficients, nonzero in either, that quantizing the decoded luma `y` first that way and then with the
    last table on the file's grid leaves as the file has them."""
    d = dct_matrix()
    top, left = grid
    h, w = (y.shape[0] - top) // 8 * 8, (y.shape[1] - left) // 8 * 8
    region = y[top : top + h, left : left + w]
    steps = earlier.reshape(8, 8)
    first = d.T @ (np.round(d @ _blocks(region, 0, 0) @ d.T / steps) * steps) @ d
    first = (np.clip(np.round(first + 128), 0, 255) - 128).transpose(0, 2, 1, 3).reshape(h, w)

    def quantized(plane):  # on the file's grid inside the region, with the last table
        return np.round(d @ _blocks(plane, (8 - top) % 8, (8 - left) % 8) @ d.T / last.reshape(8, 8))

    again, file = quantized(first), quantized(region)
    counted = (again != 0) | (file != 0)
    return float((again == file)[counted].mean()) if counted.any() else 0.0


def encode(image: Image.Image, quality: int, subsampling: str = "4:2:0", gray: bool = False,
           tables: tuple | None = None) -> bytes:
    """JPEG bytes of `image` at `quality` with libjpeg through Pillow (the field's encoder).

    `tables` (luma, chroma), 64 entries each in natural order, replace libjpeg's own, as other
    encoders (mozjpeg, cameras, Photoshop) write theirs; `quality` is then ignored.
    """
    if gray:
        image = image.convert("L")
    elif image.mode != "L":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    # Pillow scales given tables by the quality's IJG factor, so with tables it must get no quality.
    strength = {"qtables": [list(map(int, t)) for t in tables[: 1 if image.mode == "L" else 2]]} if tables else {"quality": quality}
    image.save(buffer, "JPEG", subsampling=SUBSAMPLING[subsampling], **strength)
    return buffer.getvalue()


def degrade(image: Image.Image, quality: int, subsampling: str = "4:2:0", gray: bool = False,
            tables: tuple | None = None) -> Image.Image:
    """`image` after a JPEG round trip at `quality` (or with `tables`), decoded."""
    decoded = Image.open(io.BytesIO(encode(image, quality, subsampling, gray, tables)))
    decoded.load()
    return decoded

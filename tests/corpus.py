"""A corpus of unusual and malformed inputs, generated on the spot (no committed binaries).

`build(folder)` writes the files and returns three lists of paths: inputs that
must be restored, inputs that must be refused, and damaged inputs whose bytes
may still decode (then they are restored, otherwise refused, never both).
"""

import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from conftest import photo

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width x height pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to claim width x height pixels."""
    data = bytearray(encoded(photo(16, 16), "JPEG", quality=50))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def ycck_jpeg() -> bytes:
    """A CMYK JPEG relabelled as YCCK (Adobe transform 2): decoders convert it back to CMYK."""
    data = bytearray(encoded(photo(32, 32).convert("CMYK"), "JPEG", quality=50))
    adobe = data.index(b"Adobe")
    data[adobe + 11] = 2
    return bytes(data)


def good_files() -> dict[str, bytes]:
    files = {}
    for h, w in ((1, 1), (1, 17), (17, 1), (3, 5), (13, 29), (33, 7), (31, 64), (65, 33)):
        files[f"sizes/{h}x{w}.jpg"] = encoded(photo(h, w, seed=h * w), "JPEG", quality=20)
        files[f"sizes/{h}x{w}.png"] = encoded(photo(h, w, seed=h + w), "PNG")
    for q in (1, 5, 10, 25, 50, 75, 90, 100):
        files[f"quality/q{q}.jpg"] = encoded(photo(40, 56, seed=q), "JPEG", quality=q)
    files["jpeg/progressive.jpg"] = encoded(photo(48, 64), "JPEG", quality=30, progressive=True)
    files["jpeg/progressive-444.jpg"] = encoded(photo(48, 64), "JPEG", quality=30, progressive=True, subsampling=0)
    files["jpeg/restart-blocks.jpg"] = encoded(photo(48, 64), "JPEG", quality=30, restart_marker_blocks=1)
    files["jpeg/restart-rows.jpg"] = encoded(photo(48, 64), "JPEG", quality=30, restart_marker_rows=1)
    files["jpeg/gray.jpg"] = encoded(photo(48, 64).convert("L"), "JPEG", quality=15)
    files["jpeg/icc.jpg"] = encoded(photo(48, 64), "JPEG", quality=15, icc_profile=SRGB_ICC)
    for orientation in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[f"exif/orientation-{orientation}.jpg"] = encoded(photo(40, 72), "JPEG", quality=20, exif=exif.tobytes())
    base = photo(37, 45)
    for mode in ("L", "1", "P", "LA", "RGBA", "RGB"):
        files[f"png/{mode}.png"] = encoded(base.convert(mode), "PNG")
    transparent = base.convert("P")
    files["png/P-transparency.png"] = encoded(transparent, "PNG", transparency=0)
    files["png/icc.png"] = encoded(base, "PNG", icc_profile=SRGB_ICC)
    deep = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
    files["deep/16-bit.png"] = encoded(deep, "PNG")
    files["deep/16-bit.tif"] = encoded(deep, "TIFF")
    files["other/rgb.tif"] = encoded(base, "TIFF", compression="tiff_deflate")
    files["other/rgb.bmp"] = encoded(base, "BMP")
    files["other/lossless.webp"] = encoded(base, "WEBP", lossless=True)
    files["other/rgba.webp"] = encoded(base.convert("RGBA"), "WEBP", lossless=True)
    return files


def bad_files(rng: random.Random) -> dict[str, bytes]:
    files = {f"empty/zero.{ext}": b"" for ext in ("jpg", "jpeg", "png", "tif", "webp", "bmp")}
    jpeg, png = encoded(photo(64, 64), "JPEG", quality=30), encoded(photo(64, 64), "PNG")
    for i, cut in enumerate(sorted(rng.sample(range(1, len(jpeg) - 64), 60))):
        files[f"truncated/jpeg-{i:02d}.jpg"] = jpeg[:cut]
    idat_end = png.index(b"IEND") - 8  # cuts inside the pixel data
    for i, cut in enumerate(sorted(rng.sample(range(1, idat_end), 40))):
        files[f"truncated/png-{i:02d}.png"] = png[:cut]
    for i, ext in enumerate(("jpg", "png", "tif", "webp", "bmp", "jpeg")):
        files[f"impostors/text-{i}.{ext}"] = f"this is a text file, not an image ({i})\n".encode()
        files[f"impostors/random-{i}.{ext}"] = rng.randbytes(500 + 100 * i)
        files[f"impostors/html-{i}.{ext}"] = b"<!doctype html><html><body>404 not found</body></html>"
        files[f"impostors/jpeg-head-{i}.{ext}"] = jpeg[:300] + rng.randbytes(300)
    files["bombs/png-100000x100000.png"] = png_declaring(100_000, 100_000)
    files["bombs/jpeg-60000x60000.jpg"] = jpeg_declaring(60_000, 60_000)
    files["colour/cmyk-no-profile.jpg"] = encoded(photo(32, 32).convert("CMYK"), "JPEG", quality=50)
    files["colour/ycck-no-profile.jpg"] = ycck_jpeg()
    return files


def damaged_files(rng: random.Random) -> dict[str, bytes]:
    """Flipped bytes: whether they still decode depends on where the damage fell."""
    files = {}
    jpeg, png = encoded(photo(48, 48), "JPEG", quality=40), encoded(photo(48, 48), "PNG")
    for i in range(40):
        data = bytearray(jpeg)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(2, len(data))] = rng.randrange(256)
        files[f"damaged/jpeg-{i:02d}.jpg"] = bytes(data)
    for i in range(20):
        data = bytearray(png)
        data[rng.randrange(8, len(data))] = rng.randrange(256)
        files[f"damaged/png-{i:02d}.png"] = bytes(data)
    return files


def build(folder: Path, seed: int = 0) -> tuple[list[Path], list[Path], list[Path]]:
    rng = random.Random(seed)
    groups = []
    for files in (good_files(), bad_files(rng), damaged_files(rng)):
        paths = []
        for name, data in files.items():
            path = folder / name
            path = path.with_stem(f"{path.stem}-{path.suffix[1:]}")  # a.jpg and a.png must not share a.png
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
        groups.append(paths)
    return tuple(groups)

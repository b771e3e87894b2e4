"""Reading and writing images without losing anything the restoration does not change.

Pixels stay in their stored orientation (the EXIF tag travels unchanged, so
viewers rotate the output exactly as they rotated the input, and the JPEG
block grid is never turned). EXIF and ICC bytes are copied; alpha is carried
beside the colour channels and written back untouched.
"""

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from dequant import jpeg

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


# Decompression bombs: a small file can declare billions of pixels. `read` checks the size the
# header declares against its own limit before decoding anything, so Pillow's warning-then-error
# threshold is switched off in favour of that one clear, configurable refusal.
Image.MAX_IMAGE_PIXELS = None
MAX_PIXELS = 100_000_000  # default limit: a 100-megapixel photo takes about 6 GB to restore on a CPU


class ImageError(Exception):
    """An input that cannot be read or an output that cannot be written, with the reason."""


@dataclass(frozen=True)
class Picture:
    pixels: np.ndarray  # HxWxC float32 in [0, 1]; C is 1 (gray) or 3 (RGB)
    alpha: np.ndarray | None = None  # HxW, stored dtype, passed through untouched
    sixteen_bit: bool = False  # came from a 16-bit file: write 16 bits where the format can
    quality: int | None = None  # JPEG quality read from the file's quantization tables
    exif: bytes | None = None
    icc: bytes | None = None
    tables: tuple | None = None  # the JPEG's (luma, chroma) quantization tables, for table-conditioned models
    jpeg_file: Path | bytes | None = None  # a JPEG's own file (path or bytes): its coefficients keep the output in its cells

    @property
    def gray(self) -> bool:
        return self.pixels.shape[2] == 1

    def with_pixels(self, pixels: np.ndarray) -> "Picture":
        return replace(self, pixels=pixels)


def read(source: Path | bytes, max_pixels: int = MAX_PIXELS) -> Picture:
    """Decode a file (or bytes) into a Picture; ImageError says why one cannot be used."""
    try:
        return _decode(source, max_pixels)
    except (ImageError, MemoryError):
        raise
    except Exception as error:  # Pillow's parsers raise many kinds of error on malformed files
        raise ImageError(f"not a readable image ({error or error.__class__.__name__})") from None


def load(image: "str | os.PathLike | bytes | Image.Image", max_pixels: int = MAX_PIXELS) -> Picture:
    """A Picture from a path, file bytes or a Pillow image (the Python API's inputs)."""
    if isinstance(image, Image.Image):
        try:
            picture = from_pil(image, max_pixels)
            opened_from = getattr(image, "filename", "")  # a JPEG opened from a path: its coefficients are there
            return replace(picture, jpeg_file=Path(opened_from)) if image.format == "JPEG" and opened_from else picture
        except (ImageError, MemoryError):
            raise
        except Exception as error:
            raise ImageError(f"not a usable image ({error or error.__class__.__name__})") from None
    return read(image if isinstance(image, bytes) else Path(image), max_pixels)


def _decode(source: Path | bytes, max_pixels: int) -> Picture:
    image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    picture = from_pil(image, max_pixels)
    return replace(picture, jpeg_file=source) if image.format == "JPEG" else picture


def from_pil(image: Image.Image, max_pixels: int = MAX_PIXELS) -> Picture:
    """Pixels, alpha, bit depth, JPEG quality (when Pillow read the image from a JPEG), EXIF and ICC."""
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"refused: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit "
                         f"of {max_pixels / 1e6:g} (--max-megapixels)")
    image.load()
    quality, tables = jpeg.file_quality(image), jpeg.file_tables(image)
    exif, icc = image.info.get("exif"), image.info.get("icc_profile")
    if image.mode == "CMYK":
        image, icc = _cmyk_to_srgb(image, icc)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    alpha = None
    if image.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(image.getchannel("A"))
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float32) / 65535
        return Picture(np.clip(pixels, 0, 1)[..., None], alpha, True, quality, exif, icc, tables)
    if image.mode == "1":
        image = image.convert("L")
    if image.mode not in ("L", "RGB"):
        try:
            image = image.convert("RGB")
        except ValueError:
            raise ImageError(f"unsupported colour mode {image.mode}") from None
    pixels = np.asarray(image, dtype=np.float32) / 255
    return Picture(pixels[..., None] if pixels.ndim == 2 else pixels, alpha, False, quality, exif, icc, tables)


def _cmyk_to_srgb(image: Image.Image, icc: bytes | None):
    """CMYK through its embedded profile to sRGB; without a profile the colours are unknown."""
    if not icc:
        raise ImageError("CMYK image without an ICC profile: its colours cannot be converted faithfully")
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError) as error:
        raise ImageError(f"CMYK image with an unusable ICC profile ({error})") from None
    return converted, ImageCms.ImageCmsProfile(srgb).tobytes()


def to_pil(picture: Picture, format: str) -> Image.Image:
    """The Picture as a Pillow image, rounded to the file's bit depth, alpha re-attached."""
    if picture.sixteen_bit and format in ("PNG", "TIFF") and picture.gray and picture.alpha is None:
        return Image.fromarray(np.round(picture.pixels[..., 0] * 65535).astype(np.uint16))
    pixels = to_uint8(picture.pixels)
    image = Image.fromarray(pixels[..., 0] if picture.gray else pixels)
    if picture.alpha is not None:
        if format == "JPEG":
            raise ImageError("JPEG cannot store the alpha channel; write png, webp or tif instead")
        image.putalpha(Image.fromarray(picture.alpha))  # Pillow's alpha bands are 8-bit
    return image


def to_image(picture: Picture) -> Image.Image:
    """The Picture as a Pillow image with its EXIF and ICC in `info`, and in `encoderinfo` too, so that a
    plain `image.save(path)` writes them, as `encode` does (Pillow's documented per-image save parameters)."""
    image = to_pil(picture, "PNG")
    metadata = {k: v for k, v in (("exif", picture.exif), ("icc_profile", picture.icc)) if v is not None}
    image.info.update(metadata)
    image.encoderinfo = dict(metadata)
    return image


def luma_or_rgb(picture: Picture) -> np.ndarray:
    """The picture's 8-bit pixels as measured and estimated from: HxW for gray, HxWx3 for colour."""
    pixels = to_uint8(picture.pixels)
    return pixels[..., 0] if picture.gray else pixels


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Round [0, 1] floats to 8 bits with one temporary (24-megapixel images are 288 MB a copy)."""
    scaled = np.clip(pixels, 0, 1)
    scaled *= 255
    scaled += 0.5
    return scaled.astype(np.uint8)


def encode(picture: Picture, format: str, *, quality: int = 95, subsampling: str = "4:4:4") -> bytes:
    """File bytes in `format` (a value of FORMATS), with EXIF and ICC.

    JPEG output defaults to quality 95 and full chroma, to keep what was restored.
    """
    options = {"exif": picture.exif, "icc_profile": picture.icc}
    options.update({
        "JPEG": {"quality": quality, "subsampling": jpeg.SUBSAMPLING[subsampling]},
        "WEBP": {"lossless": True},  # a lossy WebP would add new artifacts
        "TIFF": {"compression": "tiff_deflate"},
        "PNG": {},
    }[format])
    buffer = io.BytesIO()
    to_pil(picture, format).save(buffer, format, **{k: v for k, v in options.items() if v is not None})
    return buffer.getvalue()


def grayscale(picture: Picture) -> Picture:
    """The picture's luma (ITU-R 601, as libjpeg and Pillow compute it), one channel."""
    if picture.gray:
        return picture
    luma = picture.pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return picture.with_pixels(luma[..., None])

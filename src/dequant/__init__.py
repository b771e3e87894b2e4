"""dequant: restore JPEG-compressed images with neural generators.

    import dequant
    dequant.restore("photo.jpg").save("photo.png")

`import dequant` stays light: torch and the models load on the first restore.
For many images, `dequant.Restorer` keeps one model loaded (see its docstring).
"""

import functools

__version__ = "0.1.0"


def restore(image, *, model: str | None = None, quality: int | None = None, mode: str = "fidelity"):
    """Restore one image: a path, file bytes or PIL image in, a PIL image out (EXIF and ICC in `info`).

    model: a registry name (`dequant models`), a weight file or an hf:// URL; None runs the
    mode's default, fidelity (highest PSNR) or perceptual (GAN-trained, sharper).
    quality: the JPEG quality to undo, instead of the one read from the file's tables.
    """
    return _restorer(model, mode).restore(image, quality=quality)


@functools.lru_cache(maxsize=4)
def _restorer(model: str | None, mode: str):
    from dequant.restorer import Restorer

    return Restorer(model, mode=mode)


def __getattr__(name: str):
    if name in ("Restorer", "Settings"):  # imported on first use: they bring torch
        from dequant import restorer

        return getattr(restorer, name)
    raise AttributeError(f"module 'dequant' has no attribute {name!r}")

"""Property tests: whatever the size, mode, format and tiling, the output has the input's size and a
matching mode, and its values are finite and in range."""

import functools
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import photo
from dequant import images, loading, registry
from dequant.restorer import Restorer, Settings

# Input mode -> output mode: palette and 1-bit images come back as the colours they showed.
RESTORED_MODE = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "LA": "LA", "P": "RGB", "1": "L", "I;16": "I;16", "I": "I"}
FORMATS_OF = {"L": ["PNG", "JPEG", "TIFF"], "RGB": ["PNG", "JPEG", "TIFF", "WEBP"], "RGBA": ["PNG", "WEBP", "TIFF"],
              "LA": ["PNG"], "P": ["PNG"], "1": ["PNG", "TIFF"], "I;16": ["PNG", "TIFF"]}


@functools.cache
def default_model():
    return loading.load_model(None, registry.load())[0]


@st.composite
def inputs(draw):
    height, width = draw(st.integers(1, 72)), draw(st.integers(1, 72))
    mode = draw(st.sampled_from(sorted(FORMATS_OF)))
    format = draw(st.sampled_from(FORMATS_OF[mode]))
    image = photo(height, width, seed=draw(st.integers(0, 99)))
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format, **({"quality": draw(st.integers(1, 100))} if format == "JPEG" else {}))
    return buffer.getvalue(), (width, height)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(inputs(), st.sampled_from([0, 16, 32, 48]), st.sampled_from([0, 16, 32]))
def test_restored_output_matches_the_input(case, tile, overlap):
    data, size = case
    stored_mode = Image.open(io.BytesIO(data)).mode  # e.g. WebP drops an alpha that is all opaque
    picture = images.read(data)
    restored = Restorer(default_model(), Settings(device="cpu", tile=tile, overlap=overlap))(picture)
    assert np.isfinite(restored.pixels).all() and restored.pixels.min() >= 0 and restored.pixels.max() <= 1
    out = Image.open(io.BytesIO(images.encode(restored, "PNG")))
    assert out.size == size
    assert out.mode == RESTORED_MODE[stored_mode] or {out.mode, stored_mode} <= {"I", "I;16"}

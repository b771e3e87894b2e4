import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dequant.cli import app

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# Tests that need the ImageNet feature weights (perceptual losses, LPIPS) skip without them, saying what to fetch.
needs_feature_weights = pytest.mark.skipif(
    not (SHARED / "weights" / "alexnet_imagenet_features.safetensors").is_file(),
    reason="needs the feature weights in ../shared/weights (README, Data: how to get them)")


def photo(height: int = 96, width: int = 128, seed: int = 0) -> Image.Image:
    """A small synthetic photo: smooth gradients, a hard edge and texture, so JPEG hurts it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + 1) * 0.5 + 0.5, np.cos(5 * y) * 0.5 + 0.5, (x + y) / 2], axis=2)
    base[height // 3 : 2 * height // 3, width // 4 : width // 2] = [0.9, 0.1, 0.2]
    base += rng.normal(0, 0.04, base.shape)
    return Image.fromarray(np.clip(base * 255, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = 10, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


@pytest.fixture
def cli():
    """Run the CLI in-process: returns (exit code, stdout bytes, stderr text)."""
    runner = CliRunner()

    def run(*args, input: bytes | None = None):
        result = runner.invoke(app, [str(a) for a in args], input=input)
        return result.exit_code, result.stdout_bytes, result.stderr

    return run


def run_dequant(*args, env: dict | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run `python -m dequant` in a fresh process (for environment-dependent behaviour)."""
    return subprocess.run([sys.executable, "-m", "dequant", *map(str, args)], input=input, capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=300)

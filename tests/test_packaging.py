"""The wheel users install carries the registry and every bundled weight file."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_registry_and_bundled_weights(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path, ROOT],
                   check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("dequant-*.whl"))).namelist()
    assert "dequant/weights.toml" in names
    models = tomllib.loads((ROOT / "weights.toml").read_text())["models"]
    for entry in models.values():
        assert f"dequant/bundled/{entry['file']}" in names

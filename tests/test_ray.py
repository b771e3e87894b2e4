"""Ray Data batch restore: a local 2-CPU cluster, 2 actors, outputs identical to the single process."""

import subprocess
import sys
import time

from PIL import Image

from conftest import jpeg_bytes, photo


def test_ray_restore_matches_single_process(tmp_path):
    source = tmp_path / "in"
    for i in range(20):
        path = source / ("sub" if i % 4 == 0 else "") / f"img{i:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[0x0112] = 1 + i % 8
        path.write_bytes(jpeg_bytes(photo(48 + 8 * (i % 5), 64 + 16 * (i % 3), seed=i), 10 + 3 * i, exif=exif.tobytes()))
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really")

    def restore(out, *extra):
        return subprocess.run([sys.executable, "-m", "dequant", "restore", str(source), "-o", str(out), "-r", *extra],
                              capture_output=True, text=True, timeout=600)

    single = restore(tmp_path / "single")
    started = time.monotonic()
    on_ray = restore(tmp_path / "ray", "--ray", "--workers", "2")
    print(f"ray restore of 20 images: {time.monotonic() - started:.1f} s")
    assert single.returncode == on_ray.returncode == 1, on_ray.stderr[-3000:]
    assert "broken.jpg" in on_ray.stderr and "Traceback" not in on_ray.stderr
    outputs = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*.png")}
    assert len(outputs(tmp_path / "single")) == 20
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "single")
    assert not list((tmp_path / "ray").rglob("*.part"))

    again = restore(tmp_path / "ray", "--ray", "--workers", "2", "--skip-existing")
    assert "skipped 20" in again.stderr, again.stderr[-2000:]

"""Any input, any interruption, any shortage: clear one-line errors, nothing lost, nothing partial."""

import hashlib
import io
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import corpus
from conftest import jpeg_bytes, photo, run_dequant
from dequant import archs, batch, images
from dequant.restorer import Restorer, Settings


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_corpus_of_unusual_and_malformed_inputs(tmp_path):
    good, bad, either = corpus.build(tmp_path / "in")

    def output(path):
        return tmp_path / "out" / path.relative_to(tmp_path / "in").with_suffix(".png")

    assert len(good) + len(bad) + len(either) >= 200
    before = {p: digest(p) for p in good + bad + either}
    result = run_dequant("restore", tmp_path / "in", "-r", "-o", tmp_path / "out")
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("restored ") and all(line.startswith("dequant: ") for line in lines[:-1])
    # A file Pillow decodes but libjpeg cannot read the coefficients of is restored, and says so once.
    unkept = [line for line in lines[:-1] if line.endswith("restored without keeping to its quantization cells")]
    lines = [line for line in lines if line not in unkept]
    named = {line.removeprefix("dequant: ").split(": ")[0] for line in lines[:-1]}
    assert len(named) == len(lines) - 1, "one line per failed input"
    for line in unkept:
        assert output(Path(line.removeprefix("dequant: ").split(": ")[0])).exists(), line

    for path in good:
        assert str(path) not in named, path
        restored = Image.open(output(path))
        restored.load()
        assert restored.size == Image.open(path).size
    for path in bad:
        assert str(path) in named and not output(path).exists(), path
    for path in either:
        assert (str(path) in named) != output(path).exists(), path
    assert not list((tmp_path / "out").rglob("*.part")) and not list((tmp_path / "out").rglob(".*"))
    assert {p: digest(p) for p in before} == before, "inputs are never modified"
    bombs = [line for line in lines if "bombs/" in line]
    assert len(bombs) == 2 and all("over the limit" in line for line in bombs)


def test_killed_batch_resumes_with_skip_existing_to_identical_outputs(tmp_path):
    for i in range(12):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{i:02d}.jpg").write_bytes(jpeg_bytes(photo(320, 320, seed=i), 20))
    straight = run_dequant("restore", tmp_path / "in", "-o", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "dequant", "restore", tmp_path / "in", "-o", killed],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(killed.glob("*.png"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(killed.glob("*.png"))
    assert 4 <= len(finished) < 12, "killed midway"
    for path in finished:  # whatever a kill leaves is complete
        assert path.read_bytes() == (tmp_path / "straight" / path.name).read_bytes()

    resumed = run_dequant("restore", tmp_path / "in", "-o", killed, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped {len(finished)}," in resumed.stderr.decode()
    assert sorted(os.listdir(killed)) == sorted(os.listdir(tmp_path / "straight")), "no temporary files left"
    for path in (tmp_path / "straight").iterdir():
        assert (killed / path.name).read_bytes() == path.read_bytes()


def test_decompression_bomb_limit_is_configurable(tmp_path):
    (tmp_path / "bomb.png").write_bytes(corpus.png_declaring(100_000, 100_000))
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(photo(96, 128)))
    result = run_dequant("restore", tmp_path / "bomb.png", tmp_path / "photo.jpg", "-o", tmp_path / "out",
                         "--max-megapixels", "0.01")
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert "10000 megapixels, over the limit of 0.01" in err and "photo.jpg: refused: 128x96" in err


def test_a_full_disk_fails_cleanly_with_exit_code_3(tmp_path):
    """A file-size limit makes the write fail part-way, as a full disk does."""
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(photo(256, 256)))
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    result = subprocess.run([sys.executable, "-m", "dequant", "restore", tmp_path / "photo.jpg", "-o",
                             tmp_path / "out" / "photo.png"], capture_output=True, text=True, preexec_fn=limit)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert "photo.jpg: no room for the output" in result.stderr
    assert os.listdir(tmp_path / "out") == [], "neither the output nor its temporary file remains"


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    (tmp_path / "photo.png").write_bytes(b"")
    usage = batch.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(batch.shutil, "disk_usage", lambda path: usage._replace(free=batch.DISK_MARGIN))
    job = batch.Job(tmp_path / "in.png", tmp_path / "out.png")
    Image.new("RGB", (8, 8)).save(job.source)
    reason = batch.run_job(job, lambda picture: images.encode(picture, "PNG"), False, False)
    assert reason.startswith(batch.NO_ROOM) and "MB free" in reason and not job.target.exists()


class Greedy(torch.nn.Module):
    """Identity that runs out of memory on tiles wider than `fits`, as a real allocator would."""

    contract = archs.Contract()

    def __init__(self, fits: int):
        super().__init__()
        self.fits, self.sides = fits, []

    def forward(self, tiles, quality):
        self.sides.append(max(tiles.shape[-2:]))
        if self.sides[-1] > self.fits:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9000000000 bytes")
        return tiles


def test_out_of_memory_retries_with_smaller_tiles(capsys):
    picture = images.read(jpeg_bytes(photo(300, 250)))
    model = Greedy(fits=200)
    restorer = Restorer(model, Settings(device="cpu", tile=0, overlap=16, backend="torch", consistent=False))
    restored = restorer(picture)
    assert np.array_equal(restored.pixels, picture.pixels)
    assert model.sides[0] == 300 and max(model.sides[1:]) <= 200 and restorer.tile == 144
    assert "out of memory with 300-pixel tiles, retrying with 144" in capsys.readouterr().err


def test_out_of_memory_at_the_smallest_tile_is_exit_code_3(tmp_path):
    restorer = Restorer(Greedy(fits=10), Settings(device="cpu", tile=0, overlap=16, backend="torch"))
    (tmp_path / "in.jpg").write_bytes(jpeg_bytes(photo(96, 128)))
    outcome = batch.run_jobs([batch.Job(tmp_path / "in.jpg", tmp_path / "out.png")],
                        lambda picture: images.encode(restorer(picture), "PNG"), verb="restored")
    (name, reason), = outcome.failed
    assert reason.startswith("out of memory (even 64-pixel tiles") and outcome.exit_code == 3


def test_quantize_keeps_exif_and_icc(cli, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    photo(64, 96).save(tmp_path / "in.png", exif=exif.tobytes(), icc_profile=corpus.SRGB_ICC)
    code, _, err = cli("quantize", tmp_path / "in.png", "-o", tmp_path / "q.jpg", "-q", "20")
    assert code == 0, err
    out = Image.open(tmp_path / "q.jpg")
    assert out.getexif()[0x0112] == 8 and out.info["icc_profile"] == corpus.SRGB_ICC and out.size == (96, 64)

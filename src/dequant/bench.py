"""`dequant bench`: the field's protocol on LIVE1, BSDS500-test and Classic5.

Colour: the RGB reference is compressed with libjpeg (Pillow, 4:2:0) at the
quality, restored, rounded to 8 bits, and measured on RGB. Gray: the
reference's studio-range BT.601 luma, rounded to 8 bits, is compressed as a
one-channel JPEG and measured on that luma. The JPEG input itself is always
the first row. Speed counts the restoration alone, not decoding or metrics.

Double JPEG (FBCNN's non-aligned protocol): compressed at QF1, the first
rows and columns cropped off (4 and 4: the grid moves), compressed again at
QF2, and measured against the reference cropped the same way.
"""

import io
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dequant import images, metrics, runtime
from dequant.data import find_images

DATASETS = {"live1": "LIVE1", "bsds500": "BSDS500-test", "classic5": "Classic5"}
METRICS = ("psnr", "ssim", "psnrb", "lpips")


@dataclass
class Record:
    model: str
    data: str
    quality: int  # the last (or only) compression's
    gray: bool
    images: int
    psnr: float | None
    ssim: float | None
    psnrb: float | None
    lpips: float | None
    seconds_per_image: float | None
    megapixels_per_second: float | None
    peak_memory_mb: float | None
    device: str
    first_quality: int | None = None  # double JPEG: the earlier compression's quality
    shift: tuple | None = None  # double JPEG: rows and columns cropped between the two
    precision: str = "-"  # what the restorer computed in (auto resolved): fp32, bf16, fp16 or int8
    backend: str = "-"  # torch or onnxruntime
    cpu: str = ""  # model name, torch's capability string, bf16 native or not: timings differ by CPU
    worst_gain: float | None = None  # the lowest per-image PSNR gain over the JPEG (negative: that image lost)
    losing: int | None = None  # how many images came back with a lower PSNR than their JPEG


def resolve_data(name: str) -> Path:
    """A folder, or live1 / bsds500 / classic5 under $DEQUANT_DATA."""
    if name.lower() in DATASETS:
        root = os.environ.get("DEQUANT_DATA")
        if not root:
            raise ValueError(f"--data {name}: set DEQUANT_DATA to the folder holding {DATASETS[name.lower()]}/ (see README, Data)")
        path = Path(root) / DATASETS[name.lower()]
    else:
        path = Path(name)
    if not path.is_dir():
        raise ValueError(f"--data {name}: {path} is not a folder")
    return path


def test_pair(reference: Image.Image, quality: int, gray: bool, first: int | None = None,
              shift: tuple = (4, 4)) -> tuple[np.ndarray, bytes]:
    """(clean uint8 array, JPEG bytes) under the protocol; with `first`, the double JPEG one."""
    if not gray:
        clean = np.asarray(reference.convert("RGB"))
    elif reference.mode == "L":  # already a luma image (Classic5)
        clean = np.asarray(reference)
    else:
        clean = np.round(metrics.luma_bt601(np.asarray(reference.convert("RGB")))).astype(np.uint8)
    source = Image.fromarray(clean)
    if first is not None:
        once = Image.open(io.BytesIO(libjpeg(source, first)))
        dy, dx = shift
        clean, source = clean[dy:, dx:], once.crop((dx, dy, once.width, once.height))
    return clean, libjpeg(source, quality)


def libjpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)  # libjpeg defaults: 4:2:0, IJG tables
    return buffer.getvalue()


def peak_rss_reset() -> None:
    """Reset the kernel's high-water mark of this process's resident memory (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Restore = Callable[[images.Picture], images.Picture]


def evaluate(restore: Restore | None, files: list[Path], quality: int, gray: bool, wanted: set[str],
             lpips: "metrics.LPIPS | None", advance: Callable[[], None] = lambda: None,
             first: int | None = None, shift: tuple = (4, 4)) -> dict:
    """Mean metrics over the files for one model (None = the JPEG itself) at one quality (or double JPEG)."""
    scores = {m: [] for m in METRICS}
    seconds, pixels, gains = 0.0, 0, []
    for file in files:
        clean, data = test_pair(Image.open(file), quality, gray, first, shift)
        picture = jpeg_picture = images.read(data)
        if restore is not None:
            started = time.perf_counter()
            picture = restore(picture)
            seconds += time.perf_counter() - started
            pixels += clean.shape[0] * clean.shape[1]
        output = images.luma_or_rgb(picture)
        if "psnr" in wanted:
            scores["psnr"].append(metrics.psnr(output, clean, 255))
            gains.append(scores["psnr"][-1] - metrics.psnr(images.luma_or_rgb(jpeg_picture), clean, 255))
        if "ssim" in wanted:
            scores["ssim"].append(metrics.ssim(output, clean))
        if "psnrb" in wanted:
            scores["psnrb"].append(metrics.psnr_b(output, clean))
        if "lpips" in wanted and lpips is not None:
            scores["lpips"].append(lpips.score(output, clean))
        advance()
    means = {m: float(np.mean(v)) if v else None for m, v in scores.items()}
    if restore is not None:
        means["seconds_per_image"] = seconds / len(files)
        means["megapixels_per_second"] = pixels / 1e6 / seconds
        if gains:
            means["worst_gain"], means["losing"] = float(min(gains)), int(sum(g < 0 for g in gains))
    return means


def measure(models: list[str], datasets: list[str], qualities: list[int], *, mode: str = "fidelity", gray: bool,
            wanted: set[str], limit: int | None, settings, lpips_weights=None, progress=None,
            first_qualities: list[int] | None = None, shift: tuple = (4, 4)) -> list[Record]:
    """Every (model, data set, quality) combination, the JPEG rows first; with `first_qualities`,
    every (QF1, QF2) double JPEG instead of each single quality. `models`: names, files or hf:// URLs
    (none: the mode's default; 'jpeg' alone: the JPEG rows only). A model that cannot load raises
    weights.WeightsError when its turn comes."""
    import sys

    from dequant import registry
    from dequant.restorer import Restorer

    lpips = None
    if "lpips" in wanted:
        try:
            lpips = metrics.LPIPS(lpips_weights)
        except OSError as error:
            print(f"note: LPIPS skipped, its weights are missing ({error})", file=sys.stderr)
    models = ["jpeg"] + [m for m in (models or [None]) if m != "jpeg"] if models != ["jpeg"] else ["jpeg"]
    entries = registry.load()

    folders = {name: resolve_data(name) for name in datasets}
    files = {name: find_images([folder])[:limit] for name, folder in folders.items()}
    cells = [(first, q) for first in (first_qualities or [None]) for q in qualities]
    total = len(models) * len(cells) * sum(map(len, files.values()))
    task = progress.add_task("bench", total=total) if progress else None
    records = []
    for model_name in models:
        restorer = None
        if model_name != "jpeg":
            restorer = Restorer(model_name, settings, mode=mode, models=entries)
            model_name = restorer.name
        device = str(restorer.device) if restorer else "-"
        if restorer and progress is not None:
            progress.console.print(f"{model_name}: {restorer.describe()}", markup=False, highlight=False)
        for data_name, data_files in files.items():
            for first, quality in cells:
                peak_rss_reset()
                means = evaluate(restorer, data_files, quality, gray, wanted, lpips,
                                 (lambda: progress.advance(task)) if progress else (lambda: None), first, shift)
                records.append(Record(
                    model=model_name, data=Path(folders[data_name]).name, quality=quality, gray=gray,
                    images=len(data_files), psnr=means["psnr"], ssim=means["ssim"], psnrb=means["psnrb"],
                    lpips=means["lpips"], seconds_per_image=means.get("seconds_per_image"),
                    megapixels_per_second=means.get("megapixels_per_second"),
                    peak_memory_mb=peak_memory_mb(restorer) if restorer else None, device=device,
                    first_quality=first, shift=shift if first is not None else None,
                    precision=restorer.precision if restorer else "-", backend=restorer.backend if restorer else "-", cpu=runtime.cpu_description(),
                    worst_gain=means.get("worst_gain"), losing=means.get("losing"),
                ))
    return records


def peak_memory_mb(restorer) -> float:
    import torch

    if restorer.device.type == "cuda":
        return torch.cuda.max_memory_allocated(restorer.device) / 2**20
    return peak_rss_mb()


def as_dicts(records: list[Record]) -> list[dict]:
    return [asdict(r) for r in records]


def quality_label(record: Record) -> str:
    """'10', or '30>10' for double JPEG (QF1 > QF2 order of saving, not of size)."""
    return str(record.quality) if record.first_quality is None else f"{record.first_quality}>{record.quality}"


def cell(value, digits) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def markdown(records: list[Record], command: str) -> str:
    """The table for the README, with the command that produced it."""
    machines = sorted({f"{r.device} {r.precision} {r.backend}" + (f" ({r.cpu})" if r.device == "cpu" else "")
                       for r in records if r.device != "-"})
    lines = [
        f"Produced by `{command}`" + (f" on {'; '.join(machines)}." if machines else "."),
        "",
        "| model | precision | data | quality | PSNR | SSIM | PSNR-B | LPIPS | worst image (dB over JPEG) | losing | s/image | MP/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(f"| {r.model} | {r.precision} | {r.data}{' (Y)' if r.gray else ''} | {quality_label(r)} | {cell(r.psnr, 2)} | "
                     f"{cell(r.ssim, 4)} | {cell(r.psnrb, 2)} | {cell(r.lpips, 4)} | {signed(r.worst_gain)} | "
                     f"{'-' if r.losing is None else r.losing} | {cell(r.seconds_per_image, 3)} | "
                     f"{cell(r.megapixels_per_second, 2)} |")
    return "\n".join(lines) + "\n"


def table(records: list[Record]):
    """One row per model and quality, the metrics of each data set side by side."""
    from rich.table import Table

    sets = list(dict.fromkeys(r.data for r in records))
    table = Table("model", "precision", "Q", *[f"{s}\n{m}" for s in sets for m in ("PSNR", "SSIM", "PSNR-B", "LPIPS", "worst (losing)")],
                  "MP/s")
    rows = {}
    for r in records:
        rows.setdefault((r.model, r.precision, quality_label(r)), {})[r.data] = r
    for (name, precision, q), by_set in rows.items():
        cells = []
        for s in sets:
            r = by_set.get(s)
            worst = f"{signed(r.worst_gain)} ({r.losing})" if r and r.losing is not None else "-"
            cells += [cell(r.psnr, 2), cell(r.ssim, 4), cell(r.psnrb, 2), cell(r.lpips, 4), worst] if r else ["-"] * 5
        speed = [r.megapixels_per_second for r in by_set.values() if r.megapixels_per_second]
        table.add_row(name, precision, str(q), *cells, cell(sum(speed) / len(speed), 2) if speed else "-")
    return table

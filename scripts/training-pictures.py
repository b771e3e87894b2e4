#!/usr/bin/env python3
"""Build the training and validation pictures beyond ../shared: more photos, and non-photo content.

    git clone https://github.com/imazen/codec-corpus           # CID22 (CC BY-SA 4.0), clic2025 (Unsplash licence)
    git clone https://github.com/jbhuang0604/SelfExSR         # Urban100 (research use)
    python scripts/training-pictures.py --codec-corpus codec-corpus --selfexsr SelfExSR --out ~/.cache/dequant/data

writes OUT/train/{cid22,urban100,clic2025,content,fields,pixelart} and OUT/val/{cid22,content,pixelart}, OUT/manifest.tsv
(path, sha256, source, licence), which should equal docs/data/manifest.tsv, and OUT/fonts.tsv, the fonts the
generated pictures draw with (docs/data/fonts.tsv): other fonts draw other text, so other bytes. With --screenshots it also
renders the HTML documentation Debian installs under /usr/share/doc (python3-doc, nodejs, valgrind,
libxslt1-dev) with headless Chromium (Debian's chromium package) into OUT/train/screenshots and
OUT/val/screenshots: real pages of text, code, tables and navigation, a tenth of them held out for
validation (chosen by a hash of the path), at several window widths, pixel ratios and in dark mode. Never train or tune on the
repositories' kodak/, zune/, BSD100, Set5, Set14 or Sun-Hays80 folders: they are benchmark sets.
Urban100 pictures whose pixels keep an 8x8 JPEG grid (jpeg_grid_strength over GRID_LIMIT) are left out.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from dequant import content

CONTENT_TRAIN_SEED, CONTENT_VAL_SEED = 1, 2
CONTENT_TRAIN, CONTENT_VAL = 450, 54  # 50 and 6 of each of the 9 kinds of content.MIX
FIELDS_SEED, FIELDS_TRAIN = 3, 150  # colour fields (content.colour_field), for training only
# Pixel art of its own: a fresh draw of 30 for validation found what the 6 of the mixed set hid (sprites whose
# pixels fill whole 8x8 blocks: the default of 2026-12-03 lost up to 1.5 dB at q10 on 14 of 30); 100 more to train on.
PIXEL_ART_SEED, PIXEL_ART_VAL = 7, 30
PIXEL_ART_TRAIN_SEED, PIXEL_ART_TRAIN = 9, 100
GRID_LIMIT = 1.15  # measured: clean Urban100 pictures 1.00-1.14; the traced ones stand out above


def jpeg_grid_strength(path: Path) -> float:
    """Luma steps on the strongest of the 8 pixel phases over their median, per axis, the larger axis:
    about 1.0 without a JPEG grid; buildings' repeating edges raise it too, so only a hint."""
    y = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) @ [0.299, 0.587, 0.114]
    ratios = []
    for axis in (0, 1):
        steps = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)
        phases = [steps[offset::8].mean() for offset in range(8)]
        ratios.append(max(phases) / np.median(phases))
    return max(ratios)


def copy_photos(codec: Path, selfexsr: Path, out: Path) -> list[tuple[Path, str, str]]:
    """(copied file, source, licence) for every photo kept."""
    rows = []
    for split, name in (("training", "train"), ("validation", "val")):
        for file in sorted((codec / "CID22/CID22-512" / split).glob("*.png")):
            rows.append((file, out / name / "cid22" / file.name, "CID22-512 (imazen/codec-corpus)", "CC BY-SA 4.0"))
    for file in sorted((codec / "clic2025").rglob("*.png")):
        rows.append((file, out / "train/clic2025" / file.name, "clic2025 (imazen/codec-corpus)", "Unsplash License"))
    for file in sorted((selfexsr / "data/Urban100/image_SRF_2").glob("*_HR.png")):
        strength = jpeg_grid_strength(file)
        if strength > GRID_LIMIT:
            print(f"left out {file.name}: JPEG grid strength {strength:.3f}", file=sys.stderr)
            continue
        rows.append((file, out / "train/urban100" / file.name, "Urban100 (jbhuang0604/SelfExSR)", "research use"))
    kept = []
    for source, target, origin, licence in rows:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        kept.append((target, origin, licence))
    return kept


DOC_PAGES = ("python3.11/html", "nodejs", "valgrind", "libxslt1-dev")
SCREENSHOTS_TRAIN, SCREENSHOTS_VAL = 200, 40
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def screenshot(page: Path, target: Path) -> bool:
    """Render `page` into `target` (PNG) at a width, pixel ratio and colour scheme its hash picks."""
    digest = int(hashlib.sha256(str(page).encode()).hexdigest(), 16)
    width, scale = (800, 1024, 1280, 1440)[digest % 4], (1, 1, 1.25, 2)[digest // 4 % 4]
    dark = ["--force-dark-mode", "--enable-features=WebContentsForceDark"] if digest // 16 % 4 == 0 else []
    with tempfile.TemporaryDirectory() as profile:
        command = CHROMIUM + dark + [f"--user-data-dir={profile}", f"--window-size={width},{int(width * 1.25)}",
                                     f"--force-device-scale-factor={scale}", f"--screenshot={target}", page.as_uri()]
        subprocess.run(command, capture_output=True, timeout=120)
    return target.is_file()


def render_screenshots(out: Path, docs: Path = Path("/usr/share/doc")) -> list[tuple[Path, str, str]]:
    pages = sorted(p for folder in DOC_PAGES for p in (docs / folder).rglob("*.html"))
    held_out = [p for p in pages if int(hashlib.sha256(str(p).encode()).hexdigest(), 16) % 10 == 0]
    chosen = {"val": held_out[:SCREENSHOTS_VAL], "train": [p for p in pages if p not in held_out][:SCREENSHOTS_TRAIN]}
    rows = []
    for split, split_pages in chosen.items():
        (out / split / "screenshots").mkdir(parents=True, exist_ok=True)
        for page in split_pages:
            target = out / split / "screenshots" / (str(page.relative_to(docs)).replace("/", "_") + ".png")
            if target.is_file() or screenshot(page, target):
                rows.append((target, f"screenshot of {page}", "the documentation's licence (see its copyright file)"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec-corpus", type=Path, help="a clone of github.com/imazen/codec-corpus")
    parser.add_argument("--selfexsr", type=Path, help="a clone of github.com/jbhuang0604/SelfExSR")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshots", action="store_true", help="render Debian's HTML docs with Chromium too")
    args = parser.parse_args()
    rows = copy_photos(args.codec_corpus, args.selfexsr, args.out) if args.codec_corpus and args.selfexsr else []
    if args.screenshots:
        rows += render_screenshots(args.out)
    for split, seed, count in (("train", CONTENT_TRAIN_SEED, CONTENT_TRAIN), ("val", CONTENT_VAL_SEED, CONTENT_VAL)):
        written = content.write_set(args.out / split / "content", seed, count)
        rows += [(path, f"dequant.content seed {seed}", "generated (MIT)") for path in written]
    written = content.write_set(args.out / "train" / "fields", FIELDS_SEED, FIELDS_TRAIN, kinds=("field",))
    rows += [(path, f"dequant.content seed {FIELDS_SEED}, colour fields", "generated (MIT)") for path in written]
    for split, seed, count in (("val", PIXEL_ART_SEED, PIXEL_ART_VAL), ("train", PIXEL_ART_TRAIN_SEED, PIXEL_ART_TRAIN)):
        written = content.write_set(args.out / split / "pixelart", seed, count, kinds=("pixelart",))
        rows += [(path, f"dequant.content seed {seed}, pixel art", "generated (MIT)") for path in written]
    lines = [f"{path.relative_to(args.out)}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\t{origin}\t{licence}"
             for path, origin, licence in sorted(rows)]
    (args.out / "manifest.tsv").write_text("path\tsha256\tsource\tlicence\n" + "\n".join(lines) + "\n")
    # The drawn pictures' bytes depend on the fonts they draw with: the same fonts give the same manifest.
    fonts = [f"{path}\t{hashlib.sha256(path.read_bytes()).hexdigest()}" for path in content.font_files()]
    (args.out / "fonts.tsv").write_text("path\tsha256\n" + "\n".join(fonts) + "\n")
    print(f"{len(lines)} pictures under {args.out}; manifest {args.out / 'manifest.tsv'}")


if __name__ == "__main__":
    main()

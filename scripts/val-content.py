"""Never worse than the JPEG? Per image, on validation pictures of every kind (never the benchmark sets).

Kinds: photos (BSDS500-val), re-saved photos (BSDS500-val saved at 30, scaled 3/4, cropped off the grid, saved
again), screenshots (Chromium renderings of held-out documentation pages, and generated UI and terminal
pictures), text (generated pages and scans), graphics (generated charts, line art, flat graphics, dithering,
pixel art), pixel art (a set of its own) and CID22's validation split (photos and some graphics). Each is saved at every quality and
restored once; the network's output is scored as it is ("raw"), with uniform areas as decoded and kept in
the file's cells ("cells", dequant.consistency), and as `dequant restore` returns it by default ("default").

    python scripts/val-content.py --data ~/.cache/dequant/data [--model NAME] [--qualities 10,50,90] [--kinds "pixel art"] [--json out.json]
    python scripts/val-content.py --table out.json [--output default]      # the README's table from a run

Build the pictures first with scripts/training-pictures.py (--screenshots for the real screenshots).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dequant import consistency, data, degradations, images, loading, registry
from dequant.metrics import psnr
from dequant.restorer import Restorer, Settings

RESAVE = dict(first=degradations.Compression(30), scale=0.75, shift=(3, 5))
SIDE = 512  # larger pictures are cut to their central SIDE x SIDE (screenshots are up to 2880 px wide)
KINDS_OF_CONTENT = {"screenshots": ("ui", "terminal"), "text": ("text", "scan"),
                    "graphics": ("chart", "lineart", "flat", "dither", "pixelart")}


def val_sets(root: Path, bsds: Path, per_set: int) -> dict[str, list[tuple[str, np.ndarray, bool]]]:
    """kind -> [(name, clean HxWx3 uint8, re-saved?)]."""
    def load(files):
        return [(f.name, data.central(np.asarray(Image.open(f).convert("RGB")), SIDE)) for f in files]

    photos = data.find_images([bsds])
    generated = data.find_images([root / "val" / "content"])
    sets = {"photos": [(n, c, False) for n, c in load(photos[:per_set])],
            "re-saved photos": [(n, c, True) for n, c in load(photos[per_set : 2 * per_set])],
            "screenshots": [(n, c, False) for n, c in load(data.find_images([root / "val" / "screenshots"])[:per_set])]}
    for kind, members in KINDS_OF_CONTENT.items():
        chosen = [f for f in generated if f.stem.split("-")[-1] in members]
        sets.setdefault(kind, [])
        sets[kind] += [(n, c, False) for n, c in load(chosen[:per_set])]
    sets["pixel art"] = [(n, c, False) for n, c in load(data.find_images([root / "val" / "pixelart"])[:per_set])]
    sets["cid22"] = [(n, c, False) for n, c in load(data.find_images([root / "val" / "cid22"])[:per_set])]
    return {kind: members for kind, members in sets.items() if members}


def scores(restorer: Restorer, default: Restorer, clean: np.ndarray, quality: int, resaved: bool) -> dict:
    """PSNR of the JPEG and of each output against the clean picture: `restorer`'s without the cells, and
    `default`'s (as `dequant restore` returns it)."""
    recipe = degradations.Recipe(degradations.Compression(quality), **(RESAVE if resaved else {}))
    payload, target, _ = degradations.save(recipe, clean)
    picture = images.read(payload)
    raw = restorer(picture, quality=quality).pixels  # forced at the file's own quality: the same tables, no gate
    cells, _ = consistency.keep(picture.pixels, raw, consistency.read(payload))
    kept = default(picture).pixels
    out = {"jpeg": psnr(images.to_uint8(picture.pixels), target, 255)}
    for name, pixels in (("raw", raw), ("cells", cells), ("default", kept)):
        out[name] = psnr(images.to_uint8(pixels), target, 255)
    return out


def table(results: list[dict], output: str) -> str:
    """Markdown: a row per quality, a column per kind, each cell the mean and the worst image's gain in dB."""
    kinds = list(dict.fromkeys(r["kind"] for r in results))
    qualities = sorted({r["quality"] for r in results})
    lines = ["| quality | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    for quality in qualities:
        cells = []
        for kind in kinds:
            gains = np.array([r[output] - r["jpeg"] for r in results if r["kind"] == kind and r["quality"] == quality])
            cells.append(f"{gains.mean():+.2f} / {gains.min():+.2f}" if len(gains) else "-")
        lines.append(f"| {quality} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache/dequant/data")
    parser.add_argument("--bsds", type=Path, default=Path("../shared/datasets/val/BSDS500-val"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--per-set", type=int, default=12, help="pictures of each kind")
    parser.add_argument("--kinds", default=None, help="only these kinds, e.g. 'pixel art,screenshots'")
    parser.add_argument("--qualities", default=None, help="default: 10 to 95 in steps of 5")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="print the Markdown table of a --json run and stop")
    parser.add_argument("--output", default="default", help="with --table: raw, cells or default")
    parser.add_argument("--precision", default="fp32", help="fp32 (the same figures on every CPU), or as restore takes")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())["results"], args.output), end="")
        return
    generator, name = loading.load_model(args.model, registry.load())
    restorer = Restorer(generator, Settings(precision=args.precision, tile=0, consistent=False))
    default = Restorer(generator, Settings(precision=args.precision, tile=0))
    qualities = [int(q) for q in args.qualities.split(",")] if args.qualities else list(range(10, 96, 5))
    sets = val_sets(args.data, args.bsds, args.per_set)
    if args.kinds:
        sets = {kind: members for kind, members in sets.items() if kind in args.kinds.split(",")}
    print(f"{name}, {restorer.describe()}; " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()), flush=True)
    results = []
    for kind, members in sets.items():
        for quality in qualities:
            started = time.time()
            rows = [{"kind": kind, "image": n, "quality": quality, **scores(restorer, default, clean, quality, resaved)}
                    for n, clean, resaved in members]
            results += rows
            line = f"{kind:16} q{quality:<3}"
            for output in ("raw", "cells", "default"):
                gains = np.array([r[output] - r["jpeg"] for r in rows])
                line += f" | {output} mean {gains.mean():+.2f} worst {gains.min():+.2f} lose {int((gains < -0.1).sum())}"
            print(line + f"  ({time.time() - started:.0f} s)", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"model": name, "results": results}, indent=1))


if __name__ == "__main__":
    main()

"""Where keeping to the file's cells helps and where it costs, on val (never the benchmark sets).

    python scripts/val-cells.py doubles [--images 8]      # double saves on a shifted grid, re-saves: raw vs cells x1/x2/x4
    python scripts/val-cells.py widen                     # widened cells on screenshots and generated pictures
    python scripts/val-cells.py perceptual                # --mode perceptual with and without the cells: PSNR, LPIPS

The figures behind README's "Screenshots, text and graphics" and "What happens to an image".
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from dequant import consistency, data, degradations, images, loading, metrics, registry
from dequant.metrics import psnr
from dequant.restorer import Restorer, Settings

VAL = Path("../shared/datasets/val/BSDS500-val")
DATA = Path.home() / ".cache/dequant/data/val"
C = degradations.Compression


def central(pixels: np.ndarray, side: int = 512) -> np.ndarray:
    top, left = max(0, (pixels.shape[0] - side) // 2), max(0, (pixels.shape[1] - side) // 2)
    return np.ascontiguousarray(pixels[top : top + side, left : left + side])


def cleans(files) -> list[np.ndarray]:
    return [central(np.asarray(Image.open(f).convert("RGB"))) for f in files]


def outputs(restorer: Restorer, recipe, clean, widths=(1,)) -> dict:
    """PSNR of the JPEG, the network alone and the network kept in cells of each width, against the target."""
    payload, target, _ = degradations.save(recipe, clean)
    picture = images.read(payload)
    raw = restorer(picture, quality=picture.quality).pixels  # the file's own quality: the same tables, no gate
    coefficients = consistency.read(payload)
    scores = {"jpeg": psnr(images.to_uint8(picture.pixels), target, 255), "raw": psnr(images.to_uint8(raw), target, 255)}
    for width in widths:
        scores[f"x{width:g}"] = psnr(images.to_uint8(consistency.project(raw, coefficients, widen=width)), target, 255)
    return scores


def summary(rows: list[dict]) -> str:
    return " ".join(f"{k} {np.mean([r[k] - r['jpeg'] for r in rows]):+.3f}/{np.min([r[k] - r['jpeg'] for r in rows]):+.2f}"
                    for k in rows[0] if k != "jpeg")


def doubles(restorer, count: int):
    pictures = cleans(data.find_images([VAL])[:count])
    recipes = {f"{a}>{b}": degradations.Recipe(C(b), C(a), shift=(4, 4)) for a in (10, 30, 50) for b in (10, 30, 50, 75, 90)}
    recipes |= {f"30>{b} x0.75": degradations.Recipe(C(b), C(30), 0.75, (3, 5)) for b in (50, 75, 90)}
    recipes |= {f"{b}": degradations.Recipe(C(b)) for b in (10, 50, 90)}
    for label, recipe in recipes.items():
        print(f"{label:12} (mean/worst gain) {summary([outputs(restorer, recipe, c, (1, 2, 4)) for c in pictures])}", flush=True)


def widen(restorer):
    sets = {"screenshots": data.find_images([DATA / "screenshots"])[:12], "generated": data.find_images([DATA / "content"])[:18]}
    for kind, files in sets.items():
        pictures = cleans(files)
        for quality in (30, 75, 90):
            rows = [outputs(restorer, degradations.Recipe(C(quality)), c, (1, 1.5, 2, 3)) for c in pictures]
            print(f"{kind} q{quality} (mean/worst gain) {summary(rows)}", flush=True)


def perceptual(restorer):
    lpips = metrics.LPIPS()
    sets = {"photos": data.find_images([VAL])[:8], "generated": data.find_images([DATA / "content"])[:9]}
    for kind, files in sets.items():
        for quality in (10, 30, 50, 75, 90):
            scores = {"jpeg": [], "raw": [], "cells": []}
            for clean in cleans(files):
                payload, target, _ = degradations.save(degradations.Recipe(C(quality)), clean)
                picture = images.read(payload)
                raw = restorer(picture, quality=quality).pixels
                kept = consistency.project(raw, consistency.read(payload))
                for name, pixels in (("jpeg", picture.pixels), ("raw", raw), ("cells", kept)):
                    out = images.to_uint8(pixels)
                    scores[name].append((psnr(out, target, 255), lpips.score(out, target)))
            print(f"{kind} q{quality}: " + " | ".join(f"{k} PSNR {np.mean([a for a, _ in v]):.2f} LPIPS {np.mean([b for _, b in v]):.4f}"
                                                     for k, v in scores.items()), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["doubles", "widen", "perceptual"])
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    mode = "perceptual" if args.check == "perceptual" else "fidelity"
    generator, _ = loading.load_model(None, registry.load(), mode)
    restorer = Restorer(generator, Settings(precision="fp32", tile=0, consistent=False))
    {"doubles": lambda: doubles(restorer, args.images), "widen": lambda: widen(restorer),
     "perceptual": lambda: perceptual(restorer)}[args.check]()


if __name__ == "__main__":
    main()

"""Checks on the validation set (never the benchmark sets) for real-world JPEGs.

1. Every quality from 10 to 95 (step 5, and every one from 80 to 95, where a re-save of val's quality-95
   originals is nearly lossless and the network has lost on single qualities the steps of 5 skip), every
   image: the restoration's PSNR against the JPEG's.
2. Other encoders' tables against libjpeg's at a similar file size: each val image is saved with
   mozjpeg's tables and with jittered IJG tables at qualities 30, 50 and 75, and with the IJG
   quality whose file is closest in size; the mean PSNR gains are compared.

    python scripts/val-real-world.py --model dequant-base [--limit N] [--json out.json] [--qualities 90,95 --no-tables]
"""

import argparse
import json

import numpy as np
from PIL import Image

from dequant import data, degradations, images, jpeg, loading, registry
from dequant.metrics import psnr
from dequant.restorer import Restorer, Settings


def restore(restorer: Restorer, payload: bytes, clean: np.ndarray) -> tuple[float, float]:
    """(JPEG PSNR, restored PSNR) of one file against its clean image."""
    picture = images.read(payload)
    restored = images.to_uint8(restorer(picture).pixels)
    return psnr(images.to_uint8(picture.pixels), clean, 255), psnr(restored, clean, 255)


def every_quality(restorer, cleans, qualities) -> dict:
    worst = {}
    for quality in qualities:
        gains = [np.subtract(*restore(restorer, jpeg.encode(Image.fromarray(c), quality), c)[::-1]) for c in cleans]
        worst[quality] = {"mean_gain": float(np.mean(gains)), "min_gain": float(np.min(gains))}
        print(f"quality {quality}: mean gain {np.mean(gains):+.3f} dB, worst image {np.min(gains):+.3f} dB", flush=True)
    return worst


def closest_ijg(clean: np.ndarray, size: int) -> tuple[int, bytes]:
    """The IJG quality whose file is closest in bytes to `size`, and that file."""
    files = {q: jpeg.encode(Image.fromarray(clean), q) for q in range(5, 100)}
    quality = min(files, key=lambda q: abs(len(files[q]) - size))
    return quality, files[quality]


def other_tables(restorer, cleans) -> dict:
    rng = np.random.default_rng(0)
    gains = {"ijg (matched size)": [], "mozjpeg": [], "jitter": []}
    for clean in cleans:
        for quality in (30, 50, 75):
            for kind in ("mozjpeg", "jitter"):
                payload = jpeg.encode(Image.fromarray(clean), quality, tables=degradations.encoder_tables(kind, quality, rng))
                before, after = restore(restorer, payload, clean)
                gains[kind].append(after - before)
                _, matched = closest_ijg(clean, len(payload))
                before, after = restore(restorer, matched, clean)
                gains["ijg (matched size)"].append(after - before)
    summary = {kind: float(np.mean(values)) for kind, values in gains.items()}
    print("tables: " + ", ".join(f"{kind} {gain:+.3f} dB" for kind, gain in summary.items()), flush=True)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--val", default="../shared/datasets/val")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--qualities", default=None, help="e.g. 90,95 (default: 10 to 95 in steps of 5, and 80 to 95)")
    parser.add_argument("--no-tables", action="store_true", help="skip the other encoders' tables")
    args = parser.parse_args()
    generator, name = loading.load_model(args.model, registry.load())
    restorer = Restorer(generator, Settings(precision="fp32", tile=0))
    cleans = data.load_rgb(data.find_images([args.val])[: args.limit])
    print(f"{name} on {len(cleans)} val images, {restorer.describe()}", flush=True)
    qualities = ([int(q) for q in args.qualities.split(",")] if args.qualities
                 else sorted(set(range(10, 96, 5)) | set(range(80, 96))))
    report = {"model": name, "images": len(cleans), "every_quality": every_quality(restorer, cleans, qualities)}
    if not args.no_tables:
        report["tables"] = other_tables(restorer, cleans)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

"""Which strength to tell the generator: measured on val images (never the benchmark sets).

For single JPEGs and FBCNN's shifted double JPEGs (QF1 then QF2, grid moved 4,4), each val image is
restored three ways: told the quality the file's tables read (today's rule), told the harsher of that
and the quality estimated from the pixels (jpeg.blind_quality, on the grid with the strongest block
edges), and, for double JPEGs, told the harsher of QF1 and QF2 (an oracle: no file carries QF1). Prints the mean PSNR gain of each.

    python scripts/val-strength.py --model dequant-real [--images 16] [--skip 16] [--double 10>90,30>90 --single none]
"""

import argparse

import numpy as np
from PIL import Image

from dequant import data, degradations, images, jpeg
from dequant.metrics import psnr
from dequant.restorer import Restorer, Settings

DOUBLE = [(30, 10), (50, 10), (50, 30), (10, 30), (10, 50), (30, 50), (10, 10), (30, 30), (50, 50)]
SINGLE = [10, 20, 30, 50, 75, 90]


def gains(restorer, clean_images, recipe, oracle):
    rows = {"read": [], "min(read, pixels)": [], "oracle min(QF1, QF2)": [], "estimate": []}
    for clean in clean_images:
        compressed, target, read = degradations.apply(recipe, clean)
        picture = images.Picture(compressed.astype(np.float32) / 255, quality=read)
        base = psnr(compressed, target, 255)
        estimate = jpeg.blind_quality(compressed)
        rows["estimate"].append(estimate)
        for name, told in (("read", read), ("min(read, pixels)", min(read, estimate)), ("oracle min(QF1, QF2)", oracle)):
            if told is None:
                continue
            restored = images.to_uint8(restorer(picture, quality=told).pixels)
            rows[name].append(psnr(restored, target, 255) - base)
    return {k: float(np.mean(v)) for k, v in rows.items() if v}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--val", default="../shared/datasets/val")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--skip", type=int, default=16, help="leave out the images checkpoint choice uses")
    parser.add_argument("--double", default=None, help="cells QF1>QF2, comma-separated (default: FBCNN's nine)")
    parser.add_argument("--single", default=None, help="qualities, comma-separated; 'none' for no single saves")
    args = parser.parse_args()
    cells = [tuple(map(int, cell.split(">"))) for cell in args.double.split(",")] if args.double else DOUBLE
    singles = SINGLE if args.single is None else [int(q) for q in args.single.split(",") if q != "none"]
    files = data.find_images([args.val])[args.skip : args.skip + args.images]
    cleans = data.load_rgb(files)
    restorer = Restorer(args.model, Settings(precision="fp32", backend="torch"))
    for quality in singles:
        result = gains(restorer, cleans, degradations.Recipe(degradations.Compression(quality)), None)
        print(f"single {quality}: " + ", ".join(f"{k} {v:+.3f}" if k != "estimate" else f"estimate {v:.1f}"
                                                for k, v in result.items()), flush=True)
    for first, last in cells:
        recipe = degradations.Recipe(degradations.Compression(last), degradations.Compression(first), shift=(4, 4))
        result = gains(restorer, cleans, recipe, min(first, last))
        print(f"double {first}>{last}: " + ", ".join(f"{k} {v:+.3f}" if k != "estimate" else f"estimate {v:.1f}"
                                                    for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()

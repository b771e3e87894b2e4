"""For every registry model: onnxruntime against torch fp32 on LIVE1 quality-10 JPEGs whose sides are not
multiples of 16. Prints the largest pixel difference (out of 255) and both mean PSNRs.

    DEQUANT_DATA=../shared/datasets/eval python scripts/onnx-parity.py [--threads 1] [--json out.json]
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dequant import bench, images, loading, metrics, registry
from dequant.restorer import Restorer, Settings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    folder = Path(os.environ.get("DEQUANT_DATA", "../shared/datasets/eval")) / "LIVE1"
    files = [f for f in bench.find_images([folder]) if any(side % 16 for side in Image.open(f).size)]
    pairs = [bench.test_pair(Image.open(f), 10, gray=False) for f in files]
    rows = []
    for name in registry.load():
        outputs = {}
        for backend in ("torch", "onnxruntime"):
            generator, _ = loading.load_model(name, registry.load())
            restorer = Restorer(generator, Settings(precision="fp32", backend=backend, threads=args.threads))
            outputs[backend] = [images.to_uint8(restorer(images.read(data)).pixels) for _, data in pairs]
        worst = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(outputs["torch"], outputs["onnxruntime"]))
        psnrs = {b: float(np.mean([metrics.psnr(o, clean, 255) for o, (clean, _) in zip(out, pairs)]))
                 for b, out in outputs.items()}
        rows.append({"model": name, "images": len(files), "max_difference": worst, **psnrs})
        print(f"{name}: {len(files)} images, max difference {worst}/255, PSNR torch {psnrs['torch']:.3f} dB, "
              f"onnxruntime {psnrs['onnxruntime']:.3f} dB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Bundle a finished training run and print its weights.toml entry (maintainers' helper).

    python scripts/register.py NAME --description "..." [--bench docs/bench/FILE.json]

Copies runs/NAME/model.safetensors (--runs for another folder) to src/dequant/bundled/NAME.safetensors and prints the entry:
the run's own weights.toml (arch, config, sha256, exact command, steps, val PSNR), the data,
and, given a `dequant bench --json` file, the model's figures from it.
"""

import argparse
import json
import shutil
import tomllib
from pathlib import Path

from dequant import weights

DATA = ("../shared/datasets/train (BSDS500 train 200 + Wikipedia 49); "
        "val: ../shared/datasets/val (BSDS500 val, first 8 images at Q10/20/30/40)")


def toml_list(values, digits):
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def bench_tables(name: str, path: Path) -> str:
    records = [r for r in json.loads(path.read_text()) if r["model"] == name]
    speed = [r["megapixels_per_second"] for r in records]
    q10 = next(r for r in records if r["data"] == "LIVE1" and r["quality"] == 10)
    text = (f'\n[models.{name}.bench]\ncommand = {json.dumps(bench_command(path))}\n'
            f'summary = "LIVE1 Q10 {q10["psnr"]:.2f} dB RGB PSNR, LPIPS {q10["lpips"]:.4f}"\n'
            f'megapixels_per_second = {sum(speed) / len(speed):.3f}\n'
            f'device = "{q10["device"]} {q10.get("precision", "")}, {q10.get("cpu", "")}, 2 cores"\n')
    for data in dict.fromkeys(r["data"] for r in records):
        rows = sorted((r for r in records if r["data"] == data), key=lambda r: r["quality"])
        text += (f'\n[models.{name}.bench."{data}"]\nqualities = {[r["quality"] for r in rows]}\n'
                 f'psnr = {toml_list([r["psnr"] for r in rows], 2)}\nssim = {toml_list([r["ssim"] for r in rows], 4)}\n'
                 f'psnrb = {toml_list([r["psnrb"] for r in rows], 2)}\nlpips = {toml_list([r["lpips"] for r in rows], 4)}\n')
    return text


def bench_command(path: Path) -> str:
    """The command line recorded at the top of the Markdown written beside the JSON."""
    first = path.with_suffix(".md").read_text().splitlines()[0]
    return first.split("`")[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--description", required=True)
    parser.add_argument("--bench", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the folder holding the run directory")
    args = parser.parse_args()
    run = args.runs / args.name
    bundled = weights.BUNDLED / f"{args.name}.safetensors"
    shutil.copyfile(run / "model.safetensors", bundled)
    entry = (run / "weights.toml").read_text()
    assert tomllib.loads(entry)["models"][args.name]["sha256"] == weights.sha256(bundled)
    head, _, training = entry.partition(f"[models.{args.name}.training]\n")
    print(f"[models.{args.name}]\ndescription = {json.dumps(args.description)}\n"
          + head.split("\n", 1)[1] + f"\n[models.{args.name}.training]\n" + training
          + f"data = {json.dumps(DATA)}\n" + (bench_tables(args.name, args.bench) if args.bench else ""))


if __name__ == "__main__":
    main()

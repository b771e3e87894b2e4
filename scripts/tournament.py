"""The architecture tournament: candidates trained for the same wall-clock time, compared on val.

Each candidate first trains 60 steps to measure its speed on this machine, then trains from scratch for
the steps that fit `--minutes` (so every cosine schedule ends), with configs/tournament.toml's
real-world degradations. Its exported model is then scored with `dequant bench` on the val images
(never the benchmark sets): single JPEGs at qualities 10/30/60, FBCNN's shifted double JPEG (QF1 and
QF2 in 10/30/50, grid moved 4,4), and restore speed. Pause other work on the cores while it runs.

    python scripts/tournament.py --minutes 10 --runs ~/.cache/dequant/runs/tournament [--only res,naf] [--threads 1]

Two processes with two threads each on two cores run many times slower than one (oneDNN's threads
wait for each other): with other work on the machine, give each its own cores (--threads).
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

CANDIDATES = {
    "res": "{widths=[32,64,128], blocks=[2,2,4], cond_dim=64}",  # today's QUNet (dequant-base)
    "bottleneck": "{widths=[32,64,160], blocks=[2,2,6], cond_dim=64}",  # wider and deeper at 1/8
    "naf": '{widths=[48,96,192], blocks=[2,2,6], cond_dim=64, block="naf"}',  # NAFNet blocks
    "tables": '{widths=[32,64,128], blocks=[2,2,4], cond_dim=64, condition="tables"}',  # the file's tables
}
DATA = ["--data", "../shared/datasets/train", "--val", "../shared/datasets/val"]
VAL = ["--data", "../shared/datasets/val", "--limit", "16", "--metrics", "psnr"]


THREADS = {"n": 0}  # --threads: for every training and bench


def run(command: list[str], log: Path) -> str:
    if THREADS["n"] and command[1] == "train":
        command = [*command, "--set", f"threads={THREADS['n']}"]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(THREADS["n"])} if THREADS["n"] else {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    log.write_text(result.stdout + result.stderr)
    if result.returncode:
        sys.exit(f"failed ({log}):\n{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def steps_per_second(name: str, out: Path) -> float:
    text = run(["dequant", "train", "--config", "configs/tournament.toml", *DATA, "--out", str(out / f"{name}-probe"),
                "--steps", "60", "--set", f"arch_config={CANDIDATES[name]}", "--set", "log_every=20",
                "--set", "val_images=1"], out / f"{name}-probe.log")
    return float(re.findall(r"([\d.]+) it/s", text)[-1])


def bench(model: Path, extra: list[str], json_path: Path) -> list[dict]:
    run(["dequant", "bench", "--model", str(model), *VAL, *extra, "--json", str(json_path)], json_path.with_suffix(".log"))
    return json.loads(json_path.read_text())


def gain(records: list[dict], first, quality) -> float:
    """The candidate's PSNR gain over the JPEG in one cell of a bench record list."""
    cell = [r for r in records if r.get("first_quality") == first and r["quality"] == quality]
    jpeg = next(r["psnr"] for r in cell if r["model"] == "jpeg")
    return next(r["psnr"] for r in cell if r["model"] != "jpeg") - jpeg


def report(runs: Path) -> str:
    """The Markdown table of every finished candidate in `runs`."""
    from dequant import loading

    lines = ["| candidate | parameters | steps (it/s) | val gain Q10 / Q30 / Q60 | double, QF1 < QF2 | double, all 9 | MP/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in CANDIDATES:
        path = runs / f"{name}-result.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        model = loading.load_model(str(runs / name / "model.safetensors"), {})[0]
        params = sum(p.numel() for p in model.parameters())
        single = [gain(result["single"], None, q) for q in (10, 30, 60)]
        harsher_first = [gain(result["double"], a, b) for a, b in ((10, 30), (10, 50), (30, 50))]
        every = [gain(result["double"], a, b) for a in (10, 30, 50) for b in (10, 30, 50)]
        speed = [r["megapixels_per_second"] for r in result["single"] if r["model"] != "jpeg"]
        lines.append(f"| {name} | {params / 1e6:.2f} M | {result['steps']} ({result['rate']:.2f}) | "
                     + " / ".join(f"{g:+.3f}" for g in single)
                     + f" | {sum(harsher_first) / 3:+.3f} | {sum(every) / 9:+.3f} | {sum(speed) / len(speed):.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--only", default=",".join(CANDIDATES))
    parser.add_argument("--threads", type=int, default=0, help="threads for every process (0: all cores)")
    parser.add_argument("--report", action="store_true", help="print the table of the finished candidates and stop")
    args = parser.parse_args()
    if args.report:
        print(report(args.runs))
        return
    THREADS["n"] = args.threads
    args.runs.mkdir(parents=True, exist_ok=True)
    for name in args.only.split(","):
        rate = steps_per_second(name, args.runs)
        steps = int(rate * args.minutes * 60)
        out = args.runs / name
        run(["dequant", "train", "--config", "configs/tournament.toml", *DATA, "--out", str(out), "--steps", str(steps),
             "--set", f"arch_config={CANDIDATES[name]}"], args.runs / f"{name}.log")
        model = out / "model.safetensors"
        single = bench(model, ["--quality", "10,30,60"], args.runs / f"{name}-single.json")
        double = bench(model, ["--double", "10,30,50", "--quality", "10,30,50"], args.runs / f"{name}-double.json")
        result = {"name": name, "arch_config": CANDIDATES[name], "rate": rate, "steps": steps,
                  "single": single, "double": double}
        (args.runs / f"{name}-result.json").write_text(json.dumps(result, indent=1))
        print(f"{name}: {steps} steps at {rate:.2f} it/s", flush=True)


if __name__ == "__main__":
    main()

"""Plot a training run's validation curve, gain over the JPEGs (dB) against CPU-hours, from its logs.

    python scripts/plot-curve.py RUN.log [MORE.log ...] [--stage STAGE.log@STEP ...] -o docs/curve.png [--label NAME]

Reads the lines `dequant train` writes: the first line's "N thread(s) each" and every
"step S  val PSNR X dB (JPEG J, gain G) ... H h" (H counts all stretches of a resumed run, so the
logs of several sessions can be given in order). CPU-hours are hours x threads x processes.
`--stage STAGE.log@STEP`: a run started (`init`) from the weights of step STEP of what comes before
it, with a schedule of its own; its steps and hours continue from there, and later points before it
are dropped.
Pillow only: a line, axes, ticks and labels.
"""

import argparse
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

VAL = re.compile(r"step (\d+)\s+val PSNR ([\d.]+) dB \(JPEG ([\d.]+), gain ([+-][\d.]+)\).*?([\d.]+) h\s*$")
SETUP = re.compile(r"(\d+) process\(es\) on \S+, (\d+) thread\(s\) each")


def read_points(logs: list[Path]) -> list[tuple[float, float, int]]:
    """(CPU-hours, gain in dB, step) for every validation line of the logs, in step order. Each stretch's
    hours count at its own thread count (a session may train on one thread, the next on two)."""
    points, cores, hours, cpu_hours = {}, 1, 0.0, 0.0
    for log in logs:
        for line in log.read_text().splitlines():
            if setup := SETUP.search(line):
                cores = int(setup.group(1)) * int(setup.group(2))
            elif match := VAL.search(line):
                step, now = int(match.group(1)), float(match.group(5))
                cpu_hours += max(now - hours, 0.0) * cores
                hours = now
                points[step] = (cpu_hours, float(match.group(4)), step)
    return [points[step] for step in sorted(points)]


def continue_with_stage(points, stage_log: Path, from_step: int) -> list[tuple[float, float, int]]:
    """`points` up to `from_step`, then those of a run started from that step's weights."""
    kept = [point for point in points if point[2] <= from_step]
    if not kept or kept[-1][2] != from_step:
        raise SystemExit(f"plot-curve: no validation at step {from_step} before {stage_log}")
    base_hours = kept[-1][0]
    return kept + [(base_hours + hours, gain, from_step + step) for hours, gain, step in read_points([stage_log])]


def plot(points, label: str, size=(720, 420)) -> Image.Image:
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_max = max(xs) * 1.05 or 1
    y_low, y_high = min(ys), max(ys)
    pad = max((y_high - y_low) * 0.1, 0.02)
    y_low, y_high = y_low - pad, y_high + pad

    def at(x, y):
        return (left + (width - left - right) * x / x_max,
                top + (height - top - bottom) * (y_high - y) / (y_high - y_low))

    draw.rectangle((left, top, width - right, height - bottom), outline="black")
    for i in range(6):
        x, y = x_max * i / 5, y_low + (y_high - y_low) * i / 5
        px, _ = at(x, y_low)
        _, py = at(0, y)
        draw.line((px, height - bottom, px, height - bottom + 4), fill="black")
        draw.text((px - 12, height - bottom + 6), f"{x:.2f}", fill="black", font=font)
        draw.line((left - 4, py, left, py), fill="black")
        draw.text((8, py - 7), f"{y:+.3f}", fill="black", font=font)
    draw.line([at(x, y) for x, y, _ in points], fill=(200, 40, 40), width=2)
    for x, y, _ in points:
        cx, cy = at(x, y)
        draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=(200, 40, 40))
    draw.text((left, 12), f"{label}: val PSNR gain over the JPEGs (dB) against CPU-hours", fill="black", font=font)
    draw.text((width // 2 - 30, height - 22), "CPU-hours", fill="black", font=font)
    return image


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--stage", action="append", default=[], metavar="LOG@STEP",
                        help="a run started from the weights of step STEP of the curve so far")
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    points = read_points(args.logs)
    for stage in args.stage:
        log, _, step = stage.rpartition("@")
        if not step.isdigit():
            raise SystemExit(f"plot-curve: --stage takes LOG@STEP, not {stage}")
        points = continue_with_stage(points, Path(log), int(step))
    if len(points) < 2:
        raise SystemExit(f"plot-curve: fewer than two validation lines in {', '.join(map(str, args.logs))}")
    plot(points, args.label).save(args.output, optimize=True)
    last = points[-1]
    print(f"{args.output}: {len(points)} points, last step {last[2]} at {last[0]:.2f} CPU-hours, gain {last[1]:+.3f} dB")


if __name__ == "__main__":
    main()

"""Grow a QUNet training run: a copy of its run directory whose generator has more residual blocks.

    python scripts/grow-run.py RUN_DIR NEW_RUN_DIR --blocks 2,2,8

The added blocks start with their last convolution at zero (train's init_zero), so the grown network
computes what the run's did; the optimizer keeps its moments for every old tensor (new ones start
fresh), and the step, learning-rate schedule, random state and best val score carry on
(dequant.checkpoints.grow). Resume the copy with the new architecture (printed), e.g.
`dequant train ... --out NEW_RUN_DIR --resume --set 'arch_config={...}'`.
"""

import argparse
from pathlib import Path

from dequant import checkpoints, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("new_run", type=Path)
    parser.add_argument("--blocks", required=True, help="blocks per stage, e.g. 2,2,8")
    args = parser.parse_args()
    try:
        config, parameters = checkpoints.grow(args.run, args.new_run, [int(b) for b in args.blocks.split(",")])
    except ValueError as error:
        raise SystemExit(f"grow-run: {error}") from None
    print(f"{args.new_run}: {parameters:,} parameters; resume with --set 'arch_config={weights.toml_inline(config)}'")


if __name__ == "__main__":
    main()

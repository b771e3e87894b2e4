"""Grow a QUNet training run: a copy of its run directory whose generator has more residual blocks.

    python scripts/grow-run.py RUN_DIR NEW_RUN_DIR --blocks 2,2,8

The added blocks start with their last convolution at zero (train's init_zero), so the grown network
computes what the run's did; the optimizer keeps its moments for every old tensor (new ones start
fresh), and the step, learning-rate schedule, random state and best val score carry on. Resume the
copy with the new architecture (printed), e.g. `dequant train ... --out NEW_RUN_DIR --resume
--set 'arch_config={...}'`.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch

from dequant import archs, train


def grown_weights(old_state: dict, grown: torch.nn.Module) -> dict:
    """`grown`'s state: the old tensors, the new blocks fresh with their last convolution at zero."""
    new_names = [name for name in grown.state_dict() if name not in old_state]
    new_blocks = sorted({".".join(name.split(".")[:3]) + "." for name in new_names})  # e.g. middle.blocks.5.
    train.init_from_state(grown, old_state, tuple(new_blocks), tuple(block + "conv2." for block in new_blocks))
    return {name: tensor.clone() for name, tensor in grown.state_dict().items()}


def grown_optimizer(old_opt: dict, old: torch.nn.Module, grown: torch.nn.Module) -> dict:
    """Adam's state re-indexed by parameter name: old tensors keep their moments, new ones have none yet."""
    old_index = {name: i for i, (name, _) in enumerate(old.named_parameters())}
    new_names = [name for name, _ in grown.named_parameters()]
    state = {i: old_opt["state"][old_index[name]] for i, name in enumerate(new_names)
             if name in old_index and old_index[name] in old_opt["state"]}
    groups = [{**old_opt["param_groups"][0], "params": list(range(len(new_names)))}]
    return {"state": state, "param_groups": groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("new_run", type=Path)
    parser.add_argument("--blocks", required=True, help="blocks per stage, e.g. 2,2,8")
    args = parser.parse_args()
    if args.new_run.exists():
        raise SystemExit(f"grow-run: {args.new_run} exists; nothing is overwritten")
    state = torch.load(args.run / "last.pt", map_location="cpu", weights_only=True)
    config = json.loads(state["config"])
    if config["arch"] != "qunet":
        raise SystemExit(f"grow-run: grows qunet runs only, not {config['arch']}")
    old_config = config["arch_config"]
    new_config = {**old_config, "blocks": [int(b) for b in args.blocks.split(",")]}
    old, grown = archs.build("qunet", old_config), archs.build("qunet", new_config)
    old.load_state_dict(state["generator"])  # the checkpoint fits its own config
    state["generator"] = grown_weights(state["generator"], grown)
    if "ema" in state:  # the average's new blocks are the generator's, not another random start
        state["ema"] = {**state["generator"], **state["ema"]}
    state["g_opt"] = grown_optimizer(state["g_opt"], old, grown)
    state["config"] = json.dumps({**config, "arch_config": new_config})
    args.new_run.mkdir(parents=True)
    torch.save(state, args.new_run / "last.pt")
    if (args.run / "best.safetensors").exists():  # the lineage's best so far, until the grown run beats it
        shutil.copy2(args.run / "best.safetensors", args.new_run / "best.safetensors")
    parameters = sum(p.numel() for p in grown.parameters())
    print(f"{args.new_run}: step {state['step']}, {parameters:,} parameters; resume with "
          f"--set 'arch_config={toml_inline(new_config)}'")


def toml_inline(config: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in config.items()) + " }"


if __name__ == "__main__":
    main()

"""Checkpoints of a training run, and starting a generator from trained weights.

A run directory's `last.pt` holds everything needed to resume exactly (networks, optimizers, EMA, RNG,
step, best score, config, training seconds and stretches). A new run can start from weights (`init`),
leaving some tensors fresh, some zero, or a narrower network embedded in a wider one; `grow` turns a
run into one with more residual blocks that computes the same and resumes from where it was.
"""

import json
import shutil
from pathlib import Path

import torch

from dequant import archs, files, weights


def save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically: a kill mid-write never leaves a broken one."""
    with files.atomic(path) as tmp:
        torch.save(state, tmp)


def load(path: Path, device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def resume(path: Path, device, generator, g_opt, disc=None, d_opt=None, ema=None) -> dict:
    """Put a checkpoint's networks, optimizers, EMA and RNG state back; returns the checkpoint, whose
    "ema_started" says that an EMA turned on at this resume starts from the weights reached (a run's
    finishing stretch) instead of from a saved average."""
    state = load(path, device)
    generator.load_state_dict(state["generator"])
    g_opt.load_state_dict(state["g_opt"])
    for module, key in ((disc, "disc"), (d_opt, "d_opt")):
        if module is not None:
            module.load_state_dict(state[key])
    state["ema_started"] = ema is not None and "ema" not in state
    if ema is not None:
        ema.load_state_dict(state["generator"] if state["ema_started"] else state["ema"])
    torch.set_rng_state(state["rng"])
    return state


def load_init(generator: torch.nn.Module, path: Path, fresh: tuple = (), zero: tuple = (), widen: bool = False) -> None:
    """The generator's weights from `path` (see init_from_state)."""
    init_from_state(generator, weights.load_state(path), fresh, zero, origin=f"init {path}", widen=widen)


def embed_narrower(old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """`fresh` with `old` in its leading slice, and the weights from new inputs to old outputs at zero.

    Every channel of a network whose stages only add (QUNet: residual blocks, additive skips, pixel shuffles
    of whole channel groups) then keeps its old value: new channels feed old ones through zeros, while the
    gradient on those zeros is not zero, so the new channels join in as training goes."""
    grown = fresh.clone()
    if grown.dim() >= 2:
        grown[: old.shape[0], old.shape[1]:] = 0
    grown[tuple(slice(0, size) for size in old.shape)] = old
    return grown


def init_from_state(generator: torch.nn.Module, state: dict, fresh: tuple = (), zero: tuple = (),
                    origin: str = "init", widen: bool = False) -> None:
    """The generator's weights from `state`, except those under the `fresh` prefixes; every other tensor must
    be there with the same shape, so a typo cannot silently start a run from random weights. Tensors under
    the `zero` prefixes (which must name fresh ones) are then set to zero. With `widen`, a tensor no larger
    than the architecture's in any dimension is embedded in it (embed_narrower)."""
    state = {name: tensor for name, tensor in state.items() if not name.startswith(tuple(fresh))}
    if widen:
        own_tensors = generator.state_dict()
        state = {name: embed_narrower(tensor, own_tensors[name])
                 if name in own_tensors and tensor.dim() == own_tensors[name].dim()
                 and all(a <= b for a, b in zip(tensor.shape, own_tensors[name].shape)) else tensor
                 for name, tensor in state.items()}
    own = {name: tensor.shape for name, tensor in generator.state_dict().items() if not name.startswith(tuple(fresh))}
    misfits = sorted(set(own) ^ set(state) | {name for name in set(own) & set(state) if own[name] != state[name].shape})
    if misfits:
        raise ValueError(f"{origin}: does not fit the architecture ({', '.join(misfits[:3])}"
                         f"{' ...' if len(misfits) > 3 else ''}); init_fresh names what to leave fresh")
    generator.load_state_dict(state, strict=False)
    zeroed = {name: tensor for name, tensor in generator.state_dict().items() if name.startswith(tuple(zero))}
    if zero and (not zeroed or set(zeroed) & set(state)):
        raise ValueError(f"init_zero {list(zero)}: must name fresh tensors of the architecture")
    for tensor in zeroed.values():
        tensor.zero_()


def grown_weights(old_state: dict, grown: torch.nn.Module) -> dict:
    """`grown`'s state: the old tensors, the new blocks fresh with their last convolution at zero."""
    new_names = [name for name in grown.state_dict() if name not in old_state]
    new_blocks = sorted({".".join(name.split(".")[:3]) + "." for name in new_names})  # e.g. middle.blocks.5.
    init_from_state(grown, old_state, tuple(new_blocks), tuple(block + "conv2." for block in new_blocks))
    return {name: tensor.clone() for name, tensor in grown.state_dict().items()}


def grown_optimizer(old_opt: dict, old: torch.nn.Module, grown: torch.nn.Module) -> dict:
    """Adam's state re-indexed by parameter name: old tensors keep their moments, new ones have none yet."""
    old_index = {name: i for i, (name, _) in enumerate(old.named_parameters())}
    new_names = [name for name, _ in grown.named_parameters()]
    state = {i: old_opt["state"][old_index[name]] for i, name in enumerate(new_names)
             if name in old_index and old_index[name] in old_opt["state"]}
    groups = [{**old_opt["param_groups"][0], "params": list(range(len(new_names)))}]
    return {"state": state, "param_groups": groups}


def grow(run: Path, new_run: Path, blocks: list[int]) -> tuple[dict, int]:
    """Copy a QUNet run into `new_run` with `blocks` residual blocks per stage; the added blocks start as the
    identity, Adam keeps its moments for every old tensor, and step, schedule, RNG and best score carry on.
    Returns the new arch_config and its parameter count. ValueError for what cannot be grown."""
    if new_run.exists():
        raise ValueError(f"{new_run} exists; nothing is overwritten")
    state = load(run / "last.pt", "cpu")
    config = json.loads(state["config"])
    if config["arch"] != "qunet":
        raise ValueError(f"grows qunet runs only, not {config['arch']}")
    old_config = config["arch_config"]
    new_config = {**old_config, "blocks": blocks}
    old, grown = archs.build("qunet", old_config), archs.build("qunet", new_config)
    old.load_state_dict(state["generator"])  # the checkpoint fits its own config
    state["generator"] = grown_weights(state["generator"], grown)
    if "ema" in state:  # the average's new blocks are the generator's, not another random start
        state["ema"] = {**state["generator"], **state["ema"]}
    state["g_opt"] = grown_optimizer(state["g_opt"], old, grown)
    state["config"] = json.dumps({**config, "arch_config": new_config})
    new_run.mkdir(parents=True)
    save(new_run / "last.pt", state)
    if (run / "best.safetensors").exists():  # the lineage's best so far, until the grown run beats it
        shutil.copy2(run / "best.safetensors", new_run / "best.safetensors")
    return new_config, sum(p.numel() for p in grown.parameters())

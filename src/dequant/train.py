"""`dequant train`: one readable loop, from random crops to an exported generator.

The loop (in `train`) reads top to bottom: batch, step, log, validate,
checkpoint. A run directory holds `last.pt` (everything needed to resume),
`best.safetensors` (best validation PSNR so far) and, at the end,
`model.safetensors` plus a ready-to-paste `weights.toml` entry.
"""

import json
import math
import os
import shlex
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dequant import archs, data, jpeg, weights
from dequant.metrics import psnr


@dataclass
class TrainConfig:
    arch: str = "qunet"
    arch_config: dict = field(default_factory=dict)  # the architecture's keyword arguments
    seed: int = 0  # batches and initial weights follow from it
    steps: int = 6000
    batch: int = 16
    crop: int = 128  # pixels, a multiple of 16; bigger crops give the bottleneck whole-block context
    lr: float = 3e-4  # Adam; cosine decay to lr_min over `steps`
    lr_min: float = 1e-5
    quality_min: int = 5  # training qualities are drawn uniformly from [quality_min, quality_max]
    quality_max: int = 95
    gray_fraction: float = 0.1
    full_chroma_fraction: float = 0.15
    val_every: int = 250
    val_images: int = 16  # first N images of --val, each at every val quality
    val_qualities: tuple = (10, 30, 60)
    checkpoint_every: int = 250
    threads: int = 0  # torch intra-op threads; 0 = one per core


def load_config(path: Path | None, overrides: list[str]) -> TrainConfig:
    """Defaults, then a TOML file, then `key=value` overrides, each checked against the field's type."""
    values = tomllib.loads(path.read_text()) if path else {}
    for item in overrides:
        key, _, text = item.partition("=")
        values[key.strip()] = tomllib.loads(f"v = {text}")["v"] if text else ""
    known = {f.name: f for f in fields(TrainConfig)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown setting {key!r}")
        default = getattr(TrainConfig(), key)
        if isinstance(default, tuple) and isinstance(value, list):
            values[key] = tuple(value)
        elif isinstance(default, float) and isinstance(value, int):
            values[key] = float(value)
        elif not isinstance(value, type(default)):
            raise ValueError(f"setting {key} wants {type(default).__name__}, got {value!r}")
    return TrainConfig(**values)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    progress = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def validation_set(folders, cfg: TrainConfig):
    """(compressed, clean, quality) for the first images of --val at each val quality."""
    files = data.find_images(folders)[: cfg.val_images]
    pairs = []
    for clean in data.load_rgb(files):
        for quality in cfg.val_qualities:
            compressed = jpeg.degrade(data.Image.fromarray(clean), quality)
            pairs.append((data.to_tensor(np.asarray(compressed))[None], data.to_tensor(clean)[None], quality))
    return pairs


@torch.inference_mode()
def validate(model, pairs) -> tuple[float, float]:
    """Mean PSNR of the JPEGs and of their restorations, on 8-bit outputs."""
    model.eval()
    before, after = [], []
    for compressed, clean, quality in pairs:
        restored = model(compressed, torch.tensor([float(quality)]))
        before.append(psnr(compressed, clean))
        after.append(psnr(restored.clamp(0, 1).mul(255).round().div(255), clean))
    model.train()
    return float(np.mean(before)), float(np.mean(after))


def save_checkpoint(path: Path, model, optimizer, step: int, best: float, cfg: TrainConfig):
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "best": best,
         "config": json.dumps(asdict(cfg))},
        tmp,
    )
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def train(cfg: TrainConfig, data_dirs, val_dirs, run_dir: Path, resume: bool, command: str, log=None):
    log = log or (lambda line: print(line, flush=True))
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = archs.build(cfg.arch, cfg.arch_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best = 0, -math.inf
    checkpoint = run_dir / "last.pt"
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best"]
        log(f"resumed {run_dir} at step {step}")
    images = data.load_rgb(data.find_images(data_dirs), min_size=cfg.crop)
    degradation = data.Degradation(cfg.quality_min, cfg.quality_max, cfg.gray_fraction, cfg.full_chroma_fraction)
    batches = data.JpegCrops(images, crop=cfg.crop, batch=cfg.batch, seed=cfg.seed, degradation=degradation)
    val_pairs = validation_set(val_dirs, cfg)
    log(f"{len(images)} training images, {len(val_pairs)} validation pairs, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters")
    metadata = {"arch": cfg.arch, "config": json.dumps(cfg.arch_config), "command": command}

    started, start_step = time.time(), step
    while step < cfg.steps:
        compressed, clean, quality = batches[step]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss = F.l1_loss(model(compressed, quality), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        if step % 50 == 0:
            rate = (step - start_step) / (time.time() - started)
            log(f"step {step}/{cfg.steps}  l1 {loss.item():.4f}  lr {learning_rate(cfg, step):.2e}  {rate:.2f} it/s")
        if step % cfg.val_every == 0 or step == cfg.steps:
            jpeg_psnr, restored_psnr = validate(model, val_pairs)
            log(f"step {step}  val PSNR {restored_psnr:.3f} dB (JPEG {jpeg_psnr:.3f}, gain {restored_psnr - jpeg_psnr:+.3f})")
            if restored_psnr > best:
                best = restored_psnr
                weights.save(model, run_dir / "best.safetensors", {**metadata, "steps": str(step),
                                                                     "val_psnr": f"{best:.3f}"})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(checkpoint, model, optimizer, step, best, cfg)

    final = run_dir / "model.safetensors"
    final.write_bytes((run_dir / "best.safetensors").read_bytes())
    (run_dir / "weights.toml").write_text(registry_entry(final, cfg, command))
    log(f"wrote {final} (best val PSNR {best:.3f} dB) and {run_dir / 'weights.toml'}")
    return final


def registry_entry(path: Path, cfg: TrainConfig, command: str) -> str:
    """A weights.toml entry for the exported model, ready to paste."""
    meta = weights.read_metadata(path)
    name = path.parent.name
    return (
        f'[models.{name}]\narch = "{cfg.arch}"\nconfig = {weights.toml_inline(cfg.arch_config)}\n'
        f'file = "{name}.safetensors"\nsha256 = "{weights.sha256(path)}"\n'
        f"[models.{name}.training]\ncommand = {json.dumps(command)}\nsteps = {meta['steps']}\n"
        f"val_psnr = {meta['val_psnr']}\n"
    )


def command_line() -> str:
    return shlex.join(["dequant", *sys.argv[1:]])

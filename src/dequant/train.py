"""`dequant train`: one GAN loop, readable top to bottom, that trains every generator.

The loop in `train` is: batch, discriminator step, generator step, EMA, log,
validate, checkpoint. With every GAN setting at its default the discriminator
never exists and this is plain pixel-loss training. A run directory holds
`last.pt` (everything needed to resume), `best.safetensors` (best validation
PSNR so far) and, at the end, `model.safetensors` and a ready-to-paste
`weights.toml` entry. Under `torchrun` the same command trains with
DistributedDataParallel; rank 0 validates, logs and writes files.
"""

import copy
import json
import math
import os
import signal
import threading
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from dequant import archs, checkpoints, condition, data, degradations, int8, losses, runtime, weights
from dequant.archs.discriminators import DISCRIMINATORS
from dequant.metrics import LPIPS, psnr


@dataclass
class TrainConfig:
    arch: str = "qunet"
    arch_config: dict = field(default_factory=dict)  # the architecture's keyword arguments
    seed: int = 0  # initial weights and every batch follow from it
    init: str = ""  # start the generator from these weights (a .safetensors file), as SRGAN starts from SRResNet
    init_fresh: tuple = ()  # name prefixes left at their fresh initialisation (e.g. ["embed."] for a new conditioning)
    # Name prefixes set to zero after init: the last convolution of each residual block added to a trained network
    # (e.g. ["middle.blocks.4.conv2."]), so the grown network starts computing what the trained one did.
    init_zero: tuple = ()
    # Widen a trained network (e.g. QUNet widths [32, 64, 128] -> [48, 96, 128]): each init tensor smaller than the
    # architecture's fills its leading slice, and the weights from new channels into old ones start at zero, so the
    # wide network computes what the narrow one did and its new channels learn their part (see embed_narrower).
    init_widen: bool = False
    steps: int = 6000
    batch: int = 16  # per process
    crop: int = 128  # pixels, a multiple of 16; bigger crops give the bottleneck whole-block context
    lr: float = 3e-4  # generator Adam; cosine decay to lr_min over `steps`
    lr_min: float = 1e-5
    betas: tuple = (0.9, 0.999)  # Adam betas for both networks (arcnn-plus uses beta1 0.8)
    # How clean crops become JPEGs (dequant.degradations.Degradation: its fields are read as flat keys, e.g.
    # `double_fraction = 0.4`). Its real-world kinds are off by default so the shipped models' recorded commands
    # replay exactly; configs/real-world.toml turns them on, and the val set then gets double saves and other tables.
    degradation: degradations.Degradation = field(default_factory=degradations.Degradation)
    # Content losses: weights, 0 switches a term off.
    l1: float = 1.0  # pixel L1 ("LF" in the hourglass paper)
    mse: float = 0.0
    # Each crop's MSE in dB against its JPEG's (minus the PSNR gain val scores), averaged over crops: every
    # crop counts by its gain, so a screenshot's large errors do not outweigh a photo's small ones as in `mse`.
    mse_db: float = 0.0
    # Squared levels added to both MSEs of mse_db. 1.0 let a flat colour's restoration drift by a level at no
    # cost where its JPEG is within half a level (measured: flat colour fields lost 1-3 dB at q50); 0.1 is
    # about what rounding to 8 bits leaves (1/12).
    mse_db_floor: float = 1.0
    # L1 of lowpass x lowpass block means: holds colour and low frequencies where a GAN's terms let them drift,
    # and leaves the detail inside the blocks to the perceptual and adversarial terms.
    l1_lowpass: float = 0.0
    lowpass: int = 4
    ssim: float = 0.0  # weight of (1 - SSIM)
    perceptual: float = 0.0  # MSE of VGG16 features at perceptual_layer ("HF")
    perceptual_layer: str = "conv4_1"
    lpips_vgg: float = 0.0  # LPIPS with VGG16 (AlexNet's LPIPS stays the val and bench measure)
    # GAN: off while adversarial == 0.
    adversarial: float = 0.0
    adversarial_form: str = "bce"  # bce (with one-sided label smoothing) | logfree (hourglass) | hinge
    label_smoothing: float = 0.9  # target for real samples in the bce form
    discriminator: str = "patchgan"  # patchgan (hourglass) | subpatch (Galteri) | global (DequantizerNet)
    discriminator_config: dict = field(default_factory=dict)
    d_lr: float = 1e-4
    warmup_steps: int = 0  # generator-only steps with content losses before the GAN phase
    d_stop_step: int = 0  # hourglass "early stopping": no D (and no adversarial term) from here; 0 = never
    ema_decay: float = 0.0  # EMA of generator weights, validated and exported when > 0 (e.g. 0.999)
    # Bookkeeping.
    val_every: int = 250
    val_images: int = 16  # first N images of --val, each at every val quality
    val_qualities: tuple = (10, 30, 60)
    select: str = "psnr"  # the exported checkpoint: highest val PSNR, or lowest val LPIPS ("lpips", for GANs)
    # Only checkpoints whose val PSNR gain over the JPEGs is at least this compete. Meant for select = "lpips":
    # a GAN's choice keeps the picture's fidelity in view (its LPIPS keeps falling while its PSNR drifts away).
    select_min_gain: float = -math.inf
    keep_val_weights: bool = False  # also write val-STEP.safetensors at every validation, to look at and compare
    checkpoint_every: int = 250
    log_every: int = 50  # a log line every N steps when the output is not a terminal
    workers: int = 0  # DataLoader workers; batches are cheap next to a step on two cores
    threads: int = 0  # torch intra-op threads per process; 0 = cores / processes
    device: str = "auto"  # auto | cpu | cuda | mps (several processes: cuda or cpu)
    # Forward passes in bf16 autocast where the hardware runs it natively (weights, Adam state and the
    # losses stay fp32); auto decides per machine, so a run resumed on another CPU takes that CPU's.
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    # Quantization-aware training (dequant.int8): the convolutions compute as onnxruntime's int8 kernels will, their
    # ranges following a moving average of each batch's; the exported weights carry them (an int8 twin of `init`).
    int8: bool = False
    int8_keep_float: tuple = ()  # convolutions left in float, e.g. ["head.1", "tail.0"] (the first and the last)
    int8_clip: float = 0.0  # the fraction of each batch's values left outside a range at each end (dequant.int8.Range)
    # Whole training pictures (the first N, under every validation recipe) whose widest clipped ranges are fixed
    # before training (dequant.int8.calibrate); 0: the ranges follow a moving average of the batches' instead.
    int8_calibration: int = 0
    # Calibrate on the --data folders of these names only (e.g. the photographs'); empty: on every folder. Ranges
    # wide enough for screenshots left photographs 0.07 dB under float; calibrated on photos alone, before any
    # training, 0.04 (docs/int8.md).
    int8_calibration_folders: tuple = ()
    # Peak learning rate of the calibrated ranges' ends, trained with the weights (dequant.int8.learn_ranges); 0: fixed.
    int8_range_lr: float = 0.0
    # Weight of the MSE against the float `init` network's output (its teacher): an int8 twin learns to compute
    # what its float model computes, a nearer and less noisy target than the clean crop.
    distill: float = 0.0
    # Distill only on crops of pictures from the --data folders of these names (e.g. ["train", "cid22"]: the
    # photographs); empty: on every crop. A default retrained on screenshots and graphics too keeps its teacher's
    # photographs (trained on everything alike it lost 0.02 dB on BSDS500-val photos in 2000 steps) and learns
    # the rest from the clean crops. Told by the folder, not by the crop: JPEGs of pixel art all read as
    # photographs to condition.photo_like (val, 30 of 30 at q10-90), and distilled so, the photo teacher's
    # smoothing of their hard block edges stayed (-0.2 to -1.5 dB at q10 where the content expert gained).
    distill_folders: tuple = ()
    # The teacher of `distill`, a weight file; "" for the `init` network. Another teacher lets a run started from
    # a content-trained network be pulled back to the shipped default's photographs.
    teacher: str = ""


def toml_value(text: str):
    """A --set value as TOML (12, 1e-4, [10, 20], "x"); a bare word that is not TOML is taken as a string,
    so `--set perceptual_layer=conv5_2` needs no shell-quoted quotes."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def read_toml_config(path: Path, including: tuple = ()) -> dict:
    """A config file's settings over those of its `base` file (a path relative to it), so configs that share a
    recipe (configs/real-world.toml) state it once; a base may have a base of its own."""
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    if "base" not in values:
        return values
    base, chain = path.parent / values.pop("base"), including + (path.resolve(),)
    if base.resolve() in chain:
        raise ValueError(f"{path}: base {base} includes itself")
    if not base.is_file():
        raise ValueError(f"{path}: no base file {base}")
    return read_toml_config(base, chain) | values


def checked(values: dict, defaults, what: str = "setting") -> dict:
    """`values` converted to the types of the dataclass `defaults`' fields; an unknown key or a wrong type is a ValueError."""
    known = {f.name for f in fields(defaults)}
    values = dict(values)
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown {what} {key!r}")
        default = getattr(defaults, key)
        if isinstance(default, tuple) and isinstance(value, list):
            values[key] = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif type(value) is not type(default):
            raise ValueError(f"{what} {key} wants {type(default).__name__}, got {value!r}")
    return values


DEGRADATION_KEYS = {f.name for f in fields(degradations.Degradation)}


def load_config(path: Path | None, overrides: list[str]) -> TrainConfig:
    """Defaults, then a TOML file (over its base), then `key=value` overrides, each checked against the field's type.
    The degradation's fields are flat keys beside the others."""
    values = read_toml_config(path) if path else {}
    for item in overrides:
        key, _, text = item.partition("=")
        values[key.strip()] = toml_value(text)
    if "degradation" in values:
        raise ValueError("setting degradation: name its fields as keys of their own (e.g. double_fraction = 0.4)")
    degradation = {key: values.pop(key) for key in list(values) if key in DEGRADATION_KEYS}
    degradation = degradations.Degradation(**checked(degradation, degradations.Degradation()))
    cfg = TrainConfig(**checked(values, TrainConfig()), degradation=degradation)
    for choice, allowed in (("adversarial_form", ("bce", "logfree", "hinge")), ("discriminator", tuple(DISCRIMINATORS)),
                            ("device", runtime.DEVICES), ("select", ("psnr", "lpips")),
                            ("precision", ("auto", *runtime.FLOATS))):
        if getattr(cfg, choice) not in allowed:
            raise ValueError(f"setting {choice} takes one of {', '.join(allowed)}")
    if cfg.int8 and cfg.precision not in ("auto", "fp32"):
        raise ValueError("int8 = true trains in fp32: its 256 levels are emulated on exact values, which bf16 or fp16 would blur")
    if cfg.int8:
        cfg.precision = "fp32"  # what auto means for int8
    if cfg.int8_range_lr and not (cfg.int8 and cfg.int8_calibration):
        raise ValueError("int8_range_lr trains calibrated ranges: it needs int8 = true and int8_calibration")
    if cfg.arch not in archs.ARCHS:
        raise ValueError(f"unknown architecture {cfg.arch!r} (known: {', '.join(sorted(archs.ARCHS))})")
    return cfg


def learning_rate(cfg: TrainConfig, step: int, peak: float) -> float:
    progress = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr_min + 0.5 * (peak - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def gan_phase(cfg: TrainConfig, step: int) -> bool:
    """Whether this step trains the discriminator and adds the adversarial term."""
    return cfg.adversarial > 0 and step >= cfg.warmup_steps and (cfg.d_stop_step == 0 or step < cfg.d_stop_step)


class ContentLoss(torch.nn.Module):
    """The weighted sum of the switched-on content terms; returns the terms by name for the log."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.perceptual = losses.Perceptual(cfg.perceptual_layer) if cfg.perceptual > 0 else None
        self.lpips_vgg = losses.LPIPSVGG() if cfg.lpips_vgg > 0 else None

    def forward(self, restored: torch.Tensor, clean: torch.Tensor, compressed: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        cfg, terms = self.cfg, {}
        if cfg.l1:
            terms["l1"] = cfg.l1 * F.l1_loss(restored, clean)
        if cfg.mse:
            terms["mse"] = cfg.mse * F.mse_loss(restored, clean)
        if cfg.mse_db:
            terms["mse_db"] = cfg.mse_db * losses.mse_db(restored, clean, compressed, cfg.mse_db_floor)
        if cfg.l1_lowpass:
            terms["l1low"] = cfg.l1_lowpass * F.l1_loss(F.avg_pool2d(restored, cfg.lowpass), F.avg_pool2d(clean, cfg.lowpass))
        if cfg.ssim:
            terms["ssim"] = cfg.ssim * (1 - losses.ssim(restored, clean))
        if self.perceptual is not None:
            terms["vgg"] = cfg.perceptual * self.perceptual(restored, clean)
        if self.lpips_vgg is not None:
            terms["lpips"] = cfg.lpips_vgg * self.lpips_vgg(restored, clean)
        return terms


def float_init(cfg: TrainConfig, device) -> torch.nn.Module:
    """The `teacher` (else the `init`) network as it is, in float and frozen: the teacher of `distill`. Read from
    the file, not copied from the generator: a resumed run never loads `init` into its generator."""
    if not (cfg.teacher or cfg.init):
        raise ValueError("distill learns from a teacher: set teacher or init")
    teacher = archs.build(cfg.arch, cfg.arch_config).to(device)
    checkpoints.load_init(teacher, Path(cfg.teacher or cfg.init), cfg.init_fresh, cfg.init_zero, cfg.init_widen)
    return teacher.eval().requires_grad_(False)


def folders_named(data_dirs, names) -> list[Path]:
    """The --data folders (resolved) whose name is in `names`; every one when `names` is empty."""
    return [Path(d).resolve() for d in data_dirs if not names or Path(d).resolve().name in names]


def taught_pictures(files, data_dirs, names) -> list[bool]:
    """For each training file, whether its crops learn from the teacher: it lies under one of the --data
    folders whose name is in `names` (every file when `names` is empty)."""
    folders = folders_named(data_dirs, names)
    return [any(path.is_relative_to(folder) for folder in folders) for path in map(Path.resolve, map(Path, files))]


def generate(generator, compressed, quality, clean):
    """The restored batch and any loss terms the generator adds itself: CED trains its classifier
    by cross-entropy against the clean image, and its decoder on the clean image's coefficients."""
    if unwrap(generator).contract.needs_target:
        return generator(compressed, quality, target=clean)
    return generator(compressed, quality), {}


@dataclass
class ValPair:
    compressed: torch.Tensor
    clean: torch.Tensor
    quality: int  # what the file's tables read
    kind: str  # single | double | tables: the log gives each kind's gain
    tables: tuple | None  # the file's (luma, chroma) tables where not libjpeg's
    gray: bool

    def condition(self, model, device) -> torch.Tensor:
        """What `model` is told about the file (dequant.condition)."""
        pixels = self.compressed[0].permute(1, 2, 0).numpy()
        return condition.batch(condition.of(model.contract.condition, self.quality, self.tables, self.gray, pixels)).to(device)


def recipe_pairs(clean: np.ndarray, recipes, label: str = ""):
    """`clean` under each (kind, recipe), one ValPair at a time."""
    for kind, recipe in recipes:
        compressed, target, quality = degradations.apply(recipe, clean)
        yield ValPair(data.to_tensor(compressed)[None], data.to_tensor(target)[None], quality, label + kind,
                      recipe.last.tables, recipe.gray)


def validation_set(folders, cfg: TrainConfig) -> list[ValPair]:
    """The first val_images images of each --val folder, each under every validation recipe. With several
    folders (photos, non-photo content) each kind of recipe is reported per folder, e.g. `content:single`."""
    recipes = degradations.validation_recipes(cfg.val_qualities, real_world=cfg.degradation.real_world)
    pairs = []
    for folder in folders:
        label = f"{Path(folder).name}:" if len(folders) > 1 else ""
        for clean in data.load_rgb(data.find_images([folder])[: cfg.val_images]):
            pairs += recipe_pairs(clean, recipes, label)
    return pairs


CALIBRATION_SIDE = 512  # larger pictures are calibrated on their central square


def calibration_pairs(folders, cfg: TrainConfig):
    """What int8 ranges are calibrated on (dequant.int8.calibrate): the first int8_calibration pictures of each
    distinct --data folder (of those named in int8_calibration_folders, if any), under every val recipe,
    yielded one at a time. Whole 2K photos and screenshots under every recipe, held at once, filled 19 GB;
    a 512 x 512 centre still holds the outliers that 128-pixel training crops miss."""
    recipes = degradations.validation_recipes(cfg.val_qualities, real_world=cfg.degradation.real_world)
    for folder in dict.fromkeys(folders_named(folders, cfg.int8_calibration_folders)):  # a folder named twice: once
        for file in data.find_images([folder])[: cfg.int8_calibration]:
            yield from recipe_pairs(data.central(data.load_rgb([file])[0], CALIBRATION_SIDE), recipes)


@dataclass
class Scores:
    psnr: float
    lpips: float | None
    psnr_by_kind: dict


@torch.inference_mode()
def mean_scores(images, pairs: list[ValPair], lpips=None) -> Scores:
    """Mean PSNR of `images` against the pairs' clean images (also per kind), and mean LPIPS given a network."""
    psnrs = np.array([psnr(image, pair.clean) for image, pair in zip(images, pairs)])
    kinds = np.array([pair.kind for pair in pairs])
    by_kind = {kind: float(psnrs[kinds == kind].mean()) for kind in dict.fromkeys(kinds)}
    distance = None if lpips is None else float(np.mean([float(lpips(image * 2 - 1, pair.clean * 2 - 1)[0])
                                                         for image, pair in zip(images, pairs)]))
    return Scores(float(psnrs.mean()), distance, by_kind)


@torch.inference_mode()
def validate(model, pairs: list[ValPair], device, lpips=None) -> Scores:
    """Scores of the model's 8-bit restorations of the val pairs."""
    was_training = model.training
    model.eval()
    restored = [model(p.compressed.to(device), p.condition(model, device)).cpu()
                .clamp(0, 1).mul(255).round().div(255) for p in pairs]
    model.train(was_training)
    return mean_scores(restored, pairs, lpips)


def report(step: int, scores: Scores, jpeg: Scores) -> str:
    line = f"step {step}  val PSNR {scores.psnr:.3f} dB (JPEG {jpeg.psnr:.3f}, gain {scores.psnr - jpeg.psnr:+.3f})"
    if len(scores.psnr_by_kind) > 1:
        line += "  " + " ".join(f"{kind} {value - jpeg.psnr_by_kind[kind]:+.3f}" for kind, value in scores.psnr_by_kind.items())
    if scores.lpips is not None:
        line += f"  LPIPS {scores.lpips:.4f} (JPEG {jpeg.lpips:.4f})"
    return line


def setup_processes(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = runtime.pick_device(cfg.device)
    if device.type == "cuda":  # each process its own GPU
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
    return rank, world, device


def unwrap(module):
    return module.module if isinstance(module, DistributedDataParallel) else module


class TrainingStopped(Exception):
    """SIGTERM or SIGINT stopped the run after a step, with a checkpoint saved: --resume goes on from there."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}, checkpoint saved: continue with --resume")
        self.step, self.signum = step, signum


class StopRequests:
    """Catches SIGTERM and SIGINT while the loop runs, so it can stop between steps with a checkpoint instead of
    losing the steps since the last one (a session's end, `kill`, Ctrl-C). A second signal stops at once.
    One process only: DDP's ranks would first have to agree on the step, so they keep the default handlers."""

    def __init__(self, active: bool):
        self.signum = None
        self.previous = {}
        if active and threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.ask) for s in (signal.SIGTERM, signal.SIGINT)}

    def ask(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def close(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def train(cfg: TrainConfig, data_dirs, val_dirs, run_dir: Path, resume: bool, command: str, log=None):
    rank, world, device = setup_processes(cfg)
    main_process = rank == 0
    # On a terminal: a live progress line with the losses; in a log file: a line every log_every steps.
    console = Console(stderr=True)
    live = main_process and console.is_terminal and log is None
    progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                        TimeRemainingColumn(), console=console, disable=not live)
    log = log or (progress.console.print if live else (lambda line: print(line, flush=True)))
    say = log if main_process else (lambda line: None)
    run_dir.mkdir(parents=True, exist_ok=True)

    # Networks and optimizers. The generator is built first, so its initial weights depend on the seed only.
    torch.manual_seed(cfg.seed)
    generator = archs.build(cfg.arch, cfg.arch_config).to(device)
    checkpoint = run_dir / "last.pt"
    resuming = resume and checkpoint.exists()
    if cfg.init and not resuming:  # a resumed run has its own weights (and may have grown: scripts/grow-run.py)
        checkpoints.load_init(generator, Path(cfg.init), cfg.init_fresh, cfg.init_zero, cfg.init_widen)
    if cfg.int8:  # after init: the float weights it starts from; before resume: the checkpoint has the ranges
        int8.prepare(generator, cfg.int8_keep_float, momentum=0.0 if cfg.int8_calibration else 0.01, clip=cfg.int8_clip)
        if cfg.int8_calibration and not resuming:
            int8.calibrate(generator, ((p.compressed.to(device), p.condition(generator, device))
                                       for p in calibration_pairs(data_dirs, cfg)))
    ends = int8.learn_ranges(generator) if cfg.int8 and cfg.int8_range_lr else []
    learned_ends = {id(end) for end in ends}
    layers = [p for p in generator.parameters() if id(p) not in learned_ends]
    g_opt = torch.optim.Adam([{"params": layers, "peak": cfg.lr}]
                             + ([{"params": ends, "peak": cfg.int8_range_lr}] if ends else []), lr=cfg.lr, betas=cfg.betas)
    use_gan = cfg.adversarial > 0
    disc = DISCRIMINATORS[cfg.discriminator](**cfg.discriminator_config).to(device) if use_gan else None
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=cfg.betas) if use_gan else None
    ema = copy.deepcopy(generator).requires_grad_(False) if cfg.ema_decay > 0 else None
    content = ContentLoss(cfg).to(device)
    teacher = float_init(cfg, device) if cfg.distill else None

    step, best, seconds_before = 0, -math.inf, 0.0  # seconds: training time of earlier stretches of the run
    stretches = []  # (first step, precision, CPU) of each start or resume: the log of how the run was computed
    if resuming:
        state = checkpoints.resume(checkpoint, device, generator, g_opt, disc, d_opt, ema)
        if state["ema_started"]:
            say(f"EMA of the generator (decay {cfg.ema_decay}) starts at step {state['step']}")
        step, best, seconds_before = state["step"], state["best"], state.get("seconds", 0.0)
        stretches = json.loads(state.get("stretches", "[]"))
        say(f"resumed {run_dir} at step {step}")
    if world > 1:
        generator = DistributedDataParallel(generator)
        disc = DistributedDataParallel(disc) if disc is not None else None

    files = data.find_images(data_dirs)
    large_enough = [(picture, learns) for picture, learns in
                    zip(data.load_rgb(files), taught_pictures(files, data_dirs, cfg.distill_folders))
                    if min(picture.shape[:2]) >= cfg.crop]
    if not large_enough:
        raise ValueError(f"no training images of at least {cfg.crop}x{cfg.crop} pixels in {', '.join(map(str, data_dirs))}")
    images, learns_from_teacher = (list(column) for column in zip(*large_enough))
    crops = data.JpegCrops(images, crop=cfg.crop, batch=cfg.batch, seed=cfg.seed, degradation=cfg.degradation, rank=rank,
                           condition_kind=unwrap(generator).contract.condition, taught=learns_from_teacher)
    batches = iter(torch.utils.data.DataLoader(crops, batch_size=None, sampler=range(step, cfg.steps),
                                               num_workers=cfg.workers))
    val_pairs = validation_set(val_dirs, cfg) if main_process else []
    lpips = LPIPS() if main_process and cfg.select == "lpips" else None
    if main_process:  # the JPEGs' own scores are the bar to clear; they never change, so measure them once
        jpeg_scores = mean_scores([pair.compressed for pair in val_pairs], val_pairs, lpips)
    judged = ema if ema is not None else unwrap(generator)  # what validation and export use
    metadata = {"arch": cfg.arch, "config": json.dumps(cfg.arch_config), "command": command,
                **({"int8": json.dumps(list(cfg.int8_keep_float))} if cfg.int8 else {})}
    say(f"{len(images)} training images, {len(val_pairs)} validation pairs, "
        f"{sum(p.numel() for p in generator.parameters()):,} parameters, {world} process(es) on {device}, "
        f"{torch.get_num_threads()} thread(s) each")

    computing, _ = runtime.precision_for(cfg.precision, device)
    warning = runtime.check_precision(computing, device)
    stretches.append({"step": step, "precision": computing, "machine": runtime.describe(device, computing)})
    say(f"precision {computing} from step {step} on {runtime.describe(device, computing)}"
        + (f" (warning: {warning})" if warning else ""))
    if len(stretches) > 1:
        say("stretches so far: " + "; ".join(f"step {s['step']}: {s['precision']}" for s in stretches))
    autocast = lambda: runtime.autocast(device, computing)  # noqa: E731

    started, start_step = time.time(), step
    stops = StopRequests(world == 1)
    progress.start()
    task = progress.add_task("", total=cfg.steps, completed=step)
    while step < cfg.steps and stops.signum is None:
        compressed, clean, quality, from_teacher = (t.to(device) for t in next(batches))  # quality: or the tables' features
        for opt, peak in ((g_opt, cfg.lr), (d_opt, cfg.d_lr)):
            for group in (opt.param_groups if opt else []):
                group["lr"] = learning_rate(cfg, step, group.get("peak", peak))
        with autocast():
            restored, own_terms = generate(generator, compressed, quality, clean)
        restored = restored.float()  # losses are reduced in fp32 whatever the forward pass ran in
        gan = gan_phase(cfg, step)

        if gan:  # discriminator step: real crops against the generator's (detached) output
            with autocast():
                real, fake = disc(clean, compressed), disc(restored.detach(), compressed)
            d_loss = losses.discriminator_loss(cfg.adversarial_form, real.float(), fake.float(), cfg.label_smoothing)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()

        with autocast():  # generator step
            terms = {**content(restored, clean, compressed), **own_terms}
            judgement = disc(restored, compressed) if gan else None
        terms = {name: term.float() for name, term in terms.items()}
        if teacher is not None:
            with torch.no_grad(), autocast():
                taught = teacher(compressed, quality)
            per_crop = (restored - taught.float()).pow(2).mean(dim=(1, 2, 3))
            terms["distill"] = cfg.distill * (per_crop * from_teacher).mean()
        if gan:
            terms["adv"] = cfg.adversarial * losses.generator_loss(cfg.adversarial_form, judgement.float())
        loss = sum(terms.values())
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        g_opt.step()
        if ema is not None:
            with torch.no_grad():
                for average, current in zip(ema.parameters(), unwrap(generator).parameters()):
                    average.lerp_(current, 1 - cfg.ema_decay)
                for kept, current in zip(ema.buffers(), unwrap(generator).buffers()):
                    kept.copy_(current)  # batch-norm statistics and CED's bins are not averaged
        step += 1

        shown = "  ".join(f"{k} {v.item():.4g}" for k, v in terms.items()) + (f"  d {d_loss.item():.4g}" if gan else "")
        progress.update(task, advance=1, description=shown)
        if step % cfg.log_every == 0 and not live:
            rate = (step - start_step) / (time.time() - started)
            say(f"step {step}/{cfg.steps}  {shown}  lr {learning_rate(cfg, step, cfg.lr):.2e}  {rate:.2f} it/s")
        if main_process and (step % cfg.val_every == 0 or step == cfg.steps):
            scores = validate(judged, val_pairs, device, lpips)
            say(report(step, scores, jpeg_scores) + f"  {(seconds_before + time.time() - started) / 3600:.2f} h")
            restored_psnr, distance = scores.psnr, scores.lpips
            score = -distance if cfg.select == "lpips" else restored_psnr
            if restored_psnr - jpeg_scores.psnr < cfg.select_min_gain:
                score = -math.inf  # too far from the picture to be chosen
            scored = {**metadata, "steps": str(step), "val_psnr": f"{restored_psnr:.3f}",
                      **({"val_lpips": f"{distance:.4f}"} if distance is not None else {})}
            if score > best:
                best = score
                weights.save(judged, run_dir / "best.safetensors", scored)
            if cfg.keep_val_weights:
                weights.save(judged, run_dir / f"val-{step}.safetensors", scored)
        if main_process and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stops.signum is not None):
            checkpoints.save(checkpoint, {
                "generator": unwrap(generator).state_dict(), "g_opt": g_opt.state_dict(),
                **({"disc": unwrap(disc).state_dict(), "d_opt": d_opt.state_dict()} if use_gan else {}),
                **({"ema": ema.state_dict()} if ema is not None else {}),
                "rng": torch.get_rng_state(), "step": step, "best": best, "config": json.dumps(asdict(cfg)),
                "seconds": seconds_before + time.time() - started, "stretches": json.dumps(stretches),
            })

    progress.stop()
    stops.close()
    if stops.signum is not None:
        raise TrainingStopped(step, stops.signum)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if not main_process:
        return None
    if not (run_dir / "best.safetensors").exists():
        raise ValueError(f"no validation kept a PSNR gain of {cfg.select_min_gain} dB (select_min_gain): nothing exported")
    final = run_dir / "model.safetensors"
    final.write_bytes((run_dir / "best.safetensors").read_bytes())
    hours = (seconds_before + time.time() - started) / 3600
    (run_dir / "weights.toml").write_text(registry_entry(final, cfg, command, hours, stretches))
    chosen = weights.read_metadata(final)
    say(f"wrote {final} (step {chosen['steps']}, val PSNR {chosen['val_psnr']} dB"
        + (f", LPIPS {chosen['val_lpips']}" if "val_lpips" in chosen else "") + f") and {run_dir / 'weights.toml'}")
    return final


def describe_stretches(stretches) -> str:
    """'from step 0: cpu (AMD EPYC, AVX2, no native bf16), fp32; from step 4000: ...'."""
    return "; ".join(f"from step {stretch['step']}: {stretch['machine']}" for stretch in stretches)


def registry_entry(path: Path, cfg: TrainConfig, command: str, hours: float = 0.0, stretches=()) -> str:
    """A weights.toml entry for the exported model, ready to paste: with the run's wall-clock training
    hours (all stretches) and the precision and machine of each stretch."""
    meta = weights.read_metadata(path)
    name = path.parent.name
    return (
        f'[models.{name}]\narch = "{cfg.arch}"\nconfig = {weights.toml_inline(cfg.arch_config)}\n'
        f'file = "{name}.safetensors"\nsha256 = "{weights.sha256(path)}"\n'
        f"[models.{name}.training]\ncommand = {json.dumps(command)}\nsteps = {meta['steps']}\n"
        f"val_psnr = {meta['val_psnr']}\n" + (f"val_lpips = {meta['val_lpips']}\n" if "val_lpips" in meta else "")
        + f"run_steps = {cfg.steps}\nrun_hours = {hours:.2f}\n"
        + f"precision = {json.dumps(describe_stretches(stretches))}\n"
    )

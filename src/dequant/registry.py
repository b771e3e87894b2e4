"""The model registry: `weights.toml` read into frozen records.

A model name maps to its architecture and hyperparameters, its weight file
and sha256, an optional Hub repo and pinned revision, and the records of how
it was trained and how it benchmarks.
"""

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str
    config: dict
    file: str
    sha256: str
    description: str = ""
    default: bool = False  # the fidelity default: what runs when no model is named
    perceptual_default: bool = False  # what --mode perceptual runs
    int8_of: str | None = None  # this entry is that model's int8 twin (dequant.int8: quantization-aware weights)
    int8_keep_float: tuple = ()  # the twin's convolutions left in fp32, by module name
    int8_auto: bool = False  # --precision auto may take the twin: its val PSNR is within 0.03 dB of its model's
    hub_repo: str | None = None
    revision: str | None = None
    training: dict = field(default_factory=dict)
    bench: dict = field(default_factory=dict)


def registry_path() -> Path:
    """$DEQUANT_REGISTRY, else the copy inside the package, else the source checkout's."""
    if os.environ.get("DEQUANT_REGISTRY"):
        return Path(os.environ["DEQUANT_REGISTRY"])
    packaged = Path(str(resources.files("dequant") / "weights.toml"))
    return packaged if packaged.is_file() else Path(__file__).resolve().parents[2] / "weights.toml"


def load(path: Path | None = None) -> dict[str, ModelEntry]:
    table = tomllib.loads((path or registry_path()).read_text()).get("models", {})
    return {name: ModelEntry(name=name, **{**fields, "int8_keep_float": tuple(fields.get("int8_keep_float", ()))})
            for name, fields in table.items()}


MODES = ("fidelity", "perceptual")


def default(models: dict[str, ModelEntry], mode: str = "fidelity") -> ModelEntry:
    """The model a mode runs: fidelity (highest PSNR) or perceptual (GAN-trained, sharpest)."""
    if mode not in MODES:
        raise ValueError(f"--mode takes {' or '.join(MODES)}")
    marked = [m for m in models.values() if (m.default if mode == "fidelity" else m.perceptual_default)]
    if mode == "perceptual" and not marked:
        raise ValueError("no perceptual model in the registry yet; name one with --model (see `dequant models`)")
    flag = "default" if mode == "fidelity" else "perceptual_default"
    if len(marked) != 1:
        raise ValueError(f"weights.toml must mark exactly one model {flag} = true (found {len(marked)})")
    return marked[0]


def int8_twin(models: dict[str, ModelEntry], name: str) -> ModelEntry | None:
    """The int8 twin of model `name` (`--precision int8`, and auto on CPUs where int8 wins if the twin is
    marked int8_auto), if it has one."""
    return next((m for m in models.values() if m.int8_of == name), None)


def describe(entry: ModelEntry) -> dict:
    """What `dequant models` shows of an entry (builds the model to count its parameters)."""
    from dequant import archs, weights

    bundled = (weights.BUNDLED / entry.file).is_file()
    hub = f"hf://{entry.hub_repo}/{entry.file}" + (f"@{entry.revision}" if entry.revision else "") if entry.hub_repo else None
    bench = entry.bench.get("summary", "")
    return {
        "name": entry.name, "arch": entry.arch, "params": sum(p.numel() for p in archs.build(entry.arch, entry.config).parameters()),
        "file": entry.file, "sha256": entry.sha256, "default": entry.default,
        "perceptual_default": entry.perceptual_default, "description": entry.description,
        "location": "bundled" if bundled else (hub or "missing"), "hub": hub, "config": entry.config,
        "training": entry.training, "bench": entry.bench, "bench_summary": bench,
    }

"""Generators from their weights: a registry name, a local file or an hf:// URL, built and loaded."""

import json
from pathlib import Path

import torch

from dequant import archs, int8, registry, weights


def build_and_load(arch: str, config: dict, path: Path, int8_keep_float: tuple | None = None) -> torch.nn.Module:
    """A generator of `arch` with `config`, its weights from `path` (DDP's `module.` prefixes dropped); with
    `int8_keep_float`, a quantization-aware one (dequant.int8) whose weights carry their ranges."""
    model = archs.build(arch, config)
    if int8_keep_float is not None:
        int8.prepare(model, tuple(int8_keep_float))
    state = {k.removeprefix("module."): v for k, v in weights.load_state(path).items()}  # DDP prefixes
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise weights.WeightsError(f"{path}: weights do not fit arch {arch!r}: {str(error).splitlines()[0]}") from None
    return model.eval()


def load_file_model(path: Path) -> torch.nn.Module:
    """A generator from a file that carries its own arch and config in its metadata."""
    meta = weights.read_metadata(path) if Path(path).suffix == ".safetensors" else {}
    if "arch" not in meta:
        raise weights.WeightsError(f"{path}: no 'arch' in its metadata; register it in weights.toml with its arch")
    keep_float = json.loads(meta["int8"]) if "int8" in meta else None
    return build_and_load(meta["arch"], json.loads(meta.get("config", "{}")), path, keep_float)


def entry_file(entry) -> Path:
    """Resolve a registry entry to a verified local file: bundled, then HF cache, then Hub."""
    bundled = weights.BUNDLED / entry.file
    if bundled.is_file():
        return weights.verified(bundled, entry.sha256)
    if not entry.hub_repo:
        raise weights.WeightsError(f"model {entry.name}: {entry.file} is not bundled and has no hub_repo")
    return weights.verified(weights.hub_download(entry.hub_repo, entry.file, entry.revision), entry.sha256)


def load_entry(entry) -> torch.nn.Module:
    """A registry entry's generator, its weights verified; an int8 twin comes back quantization-aware."""
    return build_and_load(entry.arch, entry.config, entry_file(entry), entry.int8_keep_float if entry.int8_of else None)


def load_model(spec: str | None, models: dict, mode: str = "fidelity") -> tuple[torch.nn.Module, str]:
    """A generator from a registry name, a local path or an hf:// URL (else the mode's default);
    also says what was loaded."""
    if spec is None or spec in models:
        try:
            entry = models[spec] if spec else registry.default(models, mode)
        except ValueError as error:
            raise weights.WeightsError(str(error)) from None
        return load_entry(entry), entry.name
    if spec.startswith("hf://"):
        repo, filename, revision = weights.parse_hub_spec(spec)
        known = [m for m in models.values() if m.hub_repo == repo and m.file == filename]
        if known:
            return load_entry(known[0]), known[0].name
        return load_file_model(weights.hub_download(repo, filename, revision)), spec
    path = Path(spec)
    if not path.is_file():
        raise weights.WeightsError(f"{spec}: no such model name or file (see `dequant models`)")
    return load_file_model(path), str(path)

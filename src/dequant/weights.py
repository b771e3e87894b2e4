"""Weight files: save, verify and load generators; fetch them from the Hub.

A generator file is a safetensors file whose metadata names its architecture
and hyperparameters, so any file can rebuild its own model.
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dequant import archs


BUNDLED = Path(__file__).parent / "bundled"  # weight files shipped inside the package


class WeightsError(Exception):
    """A weight file that cannot be used: missing, tampered, unsafe or unknown."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def toml_inline(config: dict) -> str:
    """A flat dict of numbers and lists as a TOML inline table."""
    items = ", ".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in config.items())
    return "{ " + items + " }" if items else "{}"


def save(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write the generator's weights with `arch` and `config` (JSON) in the metadata."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, tmp, metadata=metadata)
    tmp.replace(path)


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(path, framework="pt") as f:
            return f.metadata() or {}
    except Exception as error:  # a truncated or foreign file: one line, not a traceback
        raise WeightsError(f"{path}: not a readable safetensors file ({error})") from None


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from safetensors, or from a .pt/.pth with weights_only=True (never unpickles code)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        read_metadata(path)  # checks the header before tensors are read
        return load_file(path)
    if path.suffix in {".pt", ".pth"}:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise WeightsError(f"{path}: refused, not a plain tensor checkpoint ({error.__class__.__name__})") from None
        return state.get("model", state) if isinstance(state, dict) else state
    raise WeightsError(f"{path}: unsupported weight format (want .safetensors, or .pt/.pth tensors)")


def build_and_load(arch: str, config: dict, path: Path) -> torch.nn.Module:
    model = archs.build(arch, config)
    state = {k.removeprefix("module."): v for k, v in load_state(path).items()}  # DDP prefixes
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{path}: weights do not fit arch {arch!r}: {str(error).splitlines()[0]}") from None
    return model.eval()


def load_file_model(path: Path) -> torch.nn.Module:
    """A generator from a file that carries its own arch and config in its metadata."""
    meta = read_metadata(path) if Path(path).suffix == ".safetensors" else {}
    if "arch" not in meta:
        raise WeightsError(f"{path}: no 'arch' in its metadata; register it in weights.toml with its arch")
    return build_and_load(meta["arch"], json.loads(meta.get("config", "{}")), path)


def verified(path: Path, expected: str) -> Path:
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(f"{path}: sha256 {actual[:12]}… does not match the registry's {expected[:12]}…; refusing it")
    return path


def hub_download(repo: str, filename: str, revision: str | None) -> Path:
    """The file from the local Hugging Face cache, else downloaded from the Hub.

    huggingface_hub itself honours HF_HOME, HF_HUB_OFFLINE and HF_ENDPOINT.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except LocalEntryNotFoundError:
        raise WeightsError(f"hf://{repo}/{filename}: not in the local cache and the Hub is offline or unreachable") from None
    except Exception as error:  # HTTP and network errors: one line, not a traceback
        raise WeightsError(f"hf://{repo}/{filename}: download failed: {str(error).splitlines()[0]}") from None


def entry_file(entry) -> Path:
    """Resolve a registry entry to a verified local file: bundled, then HF cache, then Hub."""
    bundled = BUNDLED / entry.file
    if bundled.is_file():
        return verified(bundled, entry.sha256)
    if not entry.hub_repo:
        raise WeightsError(f"model {entry.name}: {entry.file} is not bundled and has no hub_repo")
    return verified(hub_download(entry.hub_repo, entry.file, entry.revision), entry.sha256)


def parse_hub_spec(spec: str) -> tuple[str, str, str | None]:
    """hf://org/repo/path/file.safetensors[@revision] -> (repo, filename, revision)."""
    rest, _, revision = spec.removeprefix("hf://").partition("@")
    parts = rest.split("/")
    if len(parts) < 3:
        raise WeightsError(f"{spec}: want hf://org/repo/file.safetensors[@revision]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def load_model(spec: str | None, models: dict, mode: str = "fidelity") -> tuple[torch.nn.Module, str]:
    """A generator from a registry name, a local path or an hf:// URL (else the mode's default);
    also says what was loaded."""
    from dequant import registry

    if spec is None or spec in models:
        try:
            entry = models[spec] if spec else registry.default(models, mode)
        except ValueError as error:
            raise WeightsError(str(error)) from None
        return build_and_load(entry.arch, entry.config, entry_file(entry)), entry.name
    if spec.startswith("hf://"):
        repo, filename, revision = parse_hub_spec(spec)
        known = [m for m in models.values() if m.hub_repo == repo and m.file == filename]
        if known:
            return build_and_load(known[0].arch, known[0].config, entry_file(known[0])), known[0].name
        return load_file_model(hub_download(repo, filename, revision)), spec
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"{spec}: no such model name or file (see `dequant models`)")
    return load_file_model(path), str(path)

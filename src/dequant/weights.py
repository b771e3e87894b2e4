"""Weight files: save, read, verify; fetch them from the Hub. (Building a generator from them: dequant.loading.)

A generator file is a safetensors file whose metadata names its architecture
and hyperparameters, so any file can rebuild its own model.
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dequant import files


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
    with files.atomic(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


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


def parse_hub_spec(spec: str) -> tuple[str, str, str | None]:
    """hf://org/repo/path/file.safetensors[@revision] -> (repo, filename, revision)."""
    rest, _, revision = spec.removeprefix("hf://").partition("@")
    parts = rest.split("/")
    if len(parts) < 3:
        raise WeightsError(f"{spec}: want hf://org/repo/file.safetensors[@revision]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None

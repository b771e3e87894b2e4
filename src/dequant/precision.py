"""Which floating-point precision to compute in, on which hardware.

bf16 autocast is close to a free 2x on CPUs that execute bf16 in hardware
(AVX512-BF16 on Zen 4 and Intel Cooper Lake on, AMX, Arm's BF16) and about
10x slower where oneDNN has to emulate it (AVX2-only CPUs). So `auto` asks
torch what this CPU can do and only then takes bf16. Weights stay fp32 in
every case: autocast runs the convolutions in the low precision and keeps
additions with fp32 tensors (the residual onto the input image) in fp32.
"""

import contextlib
import functools
from pathlib import Path

import torch

CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 arithmetic in hardware, as torch's cpuinfo and oneDNN see it."""
    capabilities = torch.cpu.get_capabilities()
    hardware = any(capabilities.get(flag, False) for flag in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))
    return hardware and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve(requested: str, device: torch.device) -> str:
    """The precision `requested` means on `device`: fp32, bf16 or fp16."""
    if requested not in CHOICES:
        raise ValueError(f"--precision takes one of {'|'.join(CHOICES)}")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def check(precision: str, device: torch.device) -> str | None:
    """Refuse what cannot run (ValueError); a warning line for what runs but slowly, else None."""
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("--precision fp16 needs a GPU; on the CPU use auto, fp32 or bf16")
    if device.type == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
        return (f"this CPU ({cpu_description()}) emulates bf16, about 10x slower than fp32; "
                "--precision auto picks fp32 here")
    return None


def autocast(device: torch.device, precision: str):
    """The context that computes in `precision` (nothing to do for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


@functools.lru_cache(maxsize=1)
def cpu_description() -> str:
    """The CPU's model name, torch's capability string and whether bf16 is native: beside every timing."""
    name = torch.cpu.get_capabilities().get("cpu_name") or "unknown CPU"
    try:  # the full model name when the kernel tells it (cpuinfo's is shorter)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def describe(device: torch.device, precision: str) -> str:
    """E.g. 'cpu (AMD EPYC, AVX2, no native bf16), fp32'."""
    where = f"cpu ({cpu_description()})" if device.type == "cpu" else str(device)
    return f"{where}, {precision}"

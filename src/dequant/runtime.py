"""Where and how to compute: device, precision, backend, threads and tile size, for restore, bench,
export and train alike.

Adding a runtime (a precision, a backend, a device): its name in the CHOICES it belongs to, the rule
that picks it in `precision_for` or `pick_backend` (from the hardware's reported features, never from
a benchmark at start-up), its refusals in `check_precision`; the restorer computes through `Runtime`.

Precision: bf16 autocast is close to a free 2x on CPUs that execute bf16 in hardware
(AVX512-BF16 on Zen 4 and Intel Cooper Lake on, AMX, Arm's BF16) and about
10x slower where oneDNN has to emulate it (AVX2-only CPUs). So `auto` asks
torch what this CPU can do and only then takes bf16. Weights stay fp32 in
every case: autocast runs the convolutions in the low precision and keeps
additions with fp32 tensors (the residual onto the input image) in fp32.
Where bf16 is not native, `auto` takes int8 when the model has an int8 twin (weights.toml,
dequant.int8) and the CPU has int8 dot products (AVX2 and later on x86, dot product on Arm):
onnxruntime's QLinearConv, 1.6-1.8x fp32 on an AVX2 CPU (docs/int8.md). Where bf16 is native it
takes int8 only on AVX512-VNNI without AMX (Zen 4: 1.5-1.7x bf16; INT8_OVER_BF16).
"""

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from dequant.tiling import GRID  # tiles follow the JPEG macroblock grid

DEVICES = ("auto", "cpu", "cuda", "mps")
CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")  # precisions
FLOATS = ("fp32", "bf16", "fp16")  # what torch computes in (training, autocast); int8 is onnxruntime's
# CPU features that give int8 kernels their edge over fp32, best first: x86 multiplies bytes in AVX2
# (pairs added in 16 bits), VNNI and AMX add in 32 bits; Arm's dot-product and int8 matrix instructions.
INT8_FEATURES = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2", "i8mm", "dot")
# Where bf16 is native too, int8 wins only on these: measured on AMD EPYC (Zen 4: AVX512-BF16 and -VNNI, no
# AMX), LIVE1 Q10/30/50, the default: int8 2.06/2.06/1.89 MP/s, bf16 1.25/1.18/1.23. Where AMX computes bf16
# (3.3 MP/s on a Xeon) int8 against it is unmeasured, so bf16 stays.
INT8_OVER_BF16 = ("avx512_vnni",)
BACKENDS = ("auto", "torch", "onnxruntime")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 arithmetic in hardware, as torch's cpuinfo and oneDNN see it."""
    capabilities = torch.cpu.get_capabilities()
    hardware = any(capabilities.get(flag, False) for flag in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))
    return hardware and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_int8_feature() -> str | None:
    """The best of INT8_FEATURES this CPU reports, None where int8 has no edge."""
    capabilities = torch.cpu.get_capabilities()
    return next((flag for flag in INT8_FEATURES if capabilities.get(flag)), None)


def onnxruntime_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


def precision_for(requested: str, device: torch.device, supported: tuple = FLOATS,
                  backend: str = "auto") -> tuple[str, str]:
    """The precision `requested` means on `device` for a model that computes in `supported` (int8 there:
    it has an int8 twin) with `backend`, and why: decided from the hardware's reported features."""
    if requested not in CHOICES:
        raise ValueError(f"--precision takes one of {'|'.join(CHOICES)}")
    if requested != "auto":
        return requested, "--precision"
    if supported == ("int8",):
        return "int8", "the model is int8"
    if device.type == "cuda" and backend != "onnxruntime":
        return ("bf16", "native on this GPU") if torch.cuda.is_bf16_supported() else ("fp16", "no bf16 on this GPU")
    if device.type == "mps":
        return "fp16", "Apple GPU"
    int8_feature = cpu_int8_feature() if device.type == "cpu" else None
    int8_ready = "int8" in supported and int8_feature and backend != "torch" and onnxruntime_installed()
    if device.type == "cpu" and cpu_has_native_bf16() and backend != "onnxruntime":
        if int8_ready and int8_feature in INT8_OVER_BF16:
            return "int8", f"int8 dot products ({int8_feature}) outrun native bf16 without AMX; the model's int8 twin"
        return "bf16", "native bf16 on this CPU"
    if int8_ready:
        return "int8", f"no native bf16; int8 dot products ({int8_feature}) and the model's int8 twin"
    why = ("--backend onnxruntime" if device.type != "cpu" else
           "no int8 twin of this model for auto" if "int8" not in supported else
           "onnxruntime is not installed" if not onnxruntime_installed() else
           "--backend torch" if backend == "torch" else "no int8 dot products on this CPU")
    return "fp32", why if device.type != "cpu" else f"no native bf16, {why}"


def check_precision(precision: str, device: torch.device) -> str | None:
    """Refuse what cannot run (ValueError); a warning line for what runs but slowly, else None."""
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("--precision fp16 needs a GPU; on the CPU use auto, fp32, bf16 or int8")
    if device.type != "cpu" and precision == "int8":
        raise ValueError("--precision int8 runs on the CPU (onnxruntime); on a GPU use auto, bf16 or fp16")
    if precision == "int8" and not onnxruntime_installed():
        raise ValueError("--precision int8 computes with onnxruntime: pip install onnx onnxruntime")
    if device.type == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
        return (f"this CPU ({cpu_description()}) emulates bf16, about 10x slower than fp32; "
                "--precision auto picks fp32 here")
    if precision == "int8" and not cpu_int8_feature():
        return f"this CPU ({cpu_description()}) has no int8 dot products: int8 may be slower than fp32 here"
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


def pick_device(name: str) -> torch.device:
    """auto: CUDA, else Apple's MPS, else the CPU; a named device that is missing is a ValueError."""
    if name not in DEVICES:
        raise ValueError(f"--device takes {'|'.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: no MPS device is available")
    return torch.device(name)


def pick_backend(requested: str, device: torch.device, computing: str) -> str:
    """onnxruntime for int8 (its QLinearConv kernels), and where it is installed and the work is fp32 on the
    CPU (measured 8 % faster than torch there, outputs within 1/255); torch elsewhere: on GPUs and where
    bf16 is native it is the faster one."""
    if requested != "auto":
        return requested
    if computing == "int8":
        return "onnxruntime"
    return "onnxruntime" if onnxruntime_installed() and device.type == "cpu" and computing == "fp32" else "torch"


def set_threads(threads: int, device: torch.device) -> None:
    """torch's intra-op threads: `threads`, else every core on the CPU unless OMP_NUM_THREADS says otherwise."""
    if threads or (device.type == "cpu" and not os.environ.get("OMP_NUM_THREADS")):
        torch.set_num_threads(threads or os.cpu_count() or 1)


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) * 1024


# Peak activation bytes per input pixel of a tile: measured for the default
# model at fp32 (~0.45 KB), doubled for safety and for larger models.
BYTES_PER_PIXEL = 1024
MIN_TILE = 64  # out of memory below this, a picture is refused


def auto_tile(device: torch.device) -> int:
    """The largest grid-aligned tile whose activations fit a share of free memory.

    On the CPU the tile is capped at 1024: bigger tiles gain no speed there,
    and the cap keeps a 24-megapixel restore well under 2.5 GB.
    """
    budget = free_memory(device) // 4
    side = int((budget / BYTES_PER_PIXEL) ** 0.5) // GRID * GRID
    return max(256, min(side, 1024 if device.type == "cpu" else 4096))


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError that says so."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    message = str(error).lower()
    return any(words in message for words in ("can't allocate memory", "out of memory", "failed to allocate memory"))


@dataclass(frozen=True)
class Runtime:
    """Where and how a generator computes, decided once."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    backend: str  # torch | onnxruntime
    tile: int  # pixels per tile side; 0 = whole image
    warning: str | None = None  # runs, but slowly: said once on stderr
    why: str = ""  # why this precision (--verbose)

    def describe(self) -> str:
        """E.g. 'cpu (AMD EPYC, AVX2, no native bf16), int8 (no native bf16; ...), onnxruntime'."""
        return describe(self.device, self.precision) + (f" ({self.why})" if self.why else "") + f", {self.backend}"


def plan(device: str = "auto", precision: str = "auto", backend: str = "auto", tile: int | None = None,
         threads: int = 0, supported: tuple = FLOATS) -> Runtime:
    """The runtime the settings ask for on this machine (ValueError for what cannot run); sets torch's threads.
    `supported`: the precisions the generator allows (its contract's, and int8 where it has an int8 twin)."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend takes {'|'.join(BACKENDS)}")
    where = pick_device(device)
    if backend == "onnxruntime" and precision not in ("auto", "fp32", "int8"):
        raise ValueError("--backend onnxruntime computes in fp32 or int8: leave --precision at auto, fp32 or int8")
    computing, why = precision_for(precision, where, supported, backend)
    if backend == "torch" and computing == "int8":
        raise ValueError("int8 computes with onnxruntime: leave --backend at auto")
    if computing not in supported:
        missing = "has no int8 twin in weights.toml" if computing == "int8" else f"computes in {', '.join(supported)} only"
        raise ValueError(f"--precision {computing}: this model {missing}")
    warning = check_precision(computing, where)
    set_threads(threads, where)
    return Runtime(where, computing, pick_backend(backend, where, computing),
                   tile if tile is not None else auto_tile(where), warning, why)

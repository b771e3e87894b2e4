"""The restoration pipeline: picture -> JPEG quality -> tiled generator -> picture.

`Restorer` is also the Python API for repeated calls: the model loads once.

    restorer = Restorer()                   # the default model; Restorer("galteri-mse"), Restorer(mode="perceptual")
    restorer.restore("photo.jpg").save("photo.png")   # path, bytes or PIL image in, PIL image out
"""

import os
import sys
import time
from dataclasses import dataclass

import torch
from PIL import Image

from dequant import images, jpeg, precision, tiling
from dequant.images import Picture


@dataclass(frozen=True)
class Settings:
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: auto is bf16 only where the hardware runs it natively
    tile: int | None = None  # pixels per tile side; 0 = whole image; None = from free memory
    # Context around each tile. Measured reach of dequant-long (step 24000, fp32): inverting one macroblock moves
    # outputs 7 levels 48 px away, 0.5 at 64, 0.04 at 80; 80 keeps tiles within 1/255 of the whole-image run.
    overlap: int = 80
    quality: int | None = None  # force the JPEG quality instead of reading or estimating it
    threads: int = 0  # CPU threads; 0 = every core (or OMP_NUM_THREADS when set)
    backend: str = "auto"  # auto | torch | onnxruntime (see pick_backend)

BACKENDS = ("auto", "torch", "onnxruntime")


def pick_backend(requested: str, device: torch.device, computing: str) -> str:
    """onnxruntime where it is installed and the work is fp32 on the CPU (measured 8 % faster than torch
    there, outputs within 1/255); torch elsewhere: on GPUs and where bf16 is native it is the faster one."""
    if requested != "auto":
        return requested
    from importlib.util import find_spec

    installed = find_spec("onnxruntime") is not None and find_spec("onnx") is not None
    return "onnxruntime" if installed and device.type == "cpu" and computing == "fp32" else "torch"


def pick_device(name: str) -> torch.device:
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


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) * 1024


# Peak activation bytes per input pixel of a tile: measured for the default
# model at fp32 (~0.45 KB), doubled for safety and for larger models.
BYTES_PER_PIXEL = 1024


def auto_tile(device: torch.device) -> int:
    """The largest grid-aligned tile whose activations fit a share of free memory.

    On the CPU the tile is capped at 1024: bigger tiles gain no speed there,
    and the cap keeps a 24-megapixel restore well under 2.5 GB.
    """
    budget = free_memory(device) // 4
    side = int((budget / BYTES_PER_PIXEL) ** 0.5) // tiling.GRID * tiling.GRID
    return max(256, min(side, 1024 if device.type == "cpu" else 4096))


class Restorer:
    """A generator placed on its device, ready to restore pictures one after another.

    `model`: a registry name, a weight file or hf:// URL, a torch module, or None for the `mode`'s
    default (fidelity: highest PSNR; perceptual: GAN-trained). `settings`: device, precision, tiles.
    """

    def __init__(self, model: "torch.nn.Module | str | os.PathLike | None" = None, settings: Settings = Settings(),
                 *, mode: str = "fidelity"):
        if not isinstance(model, torch.nn.Module):
            from dequant import registry, weights

            model, self.name = weights.load_model(None if model is None else str(model), registry.load(), mode)
        else:
            self.name = type(model).__name__
        self.settings = settings
        self.device = pick_device(settings.device)
        if settings.backend not in BACKENDS:
            raise ValueError(f"--backend takes {'|'.join(BACKENDS)}")
        if settings.backend == "onnxruntime" and settings.precision not in ("auto", "fp32"):
            raise ValueError("--backend onnxruntime computes in fp32: leave --precision at auto or fp32")
        self.precision = "fp32" if settings.backend == "onnxruntime" else precision.resolve(settings.precision, self.device)
        self.backend = pick_backend(settings.backend, self.device, self.precision)
        warning = precision.check(self.precision, self.device)
        if warning:
            print(f"dequant: warning: {warning}", file=sys.stderr)
        if settings.threads or (self.device.type == "cpu" and not os.environ.get("OMP_NUM_THREADS")):
            torch.set_num_threads(settings.threads or os.cpu_count() or 1)
        if self.backend == "onnxruntime":
            from dequant import onnx_graph

            self.model = onnx_graph.OnnxGenerator(onnx_graph.cached_graph(model.cpu()), self.device, torch.get_num_threads())
        else:
            # Channels-last convolutions: 1.2-2.2x faster on the CPU for our generators (measured on a
            # 481x321 image), outputs within 1/255 of the default layout. Weights stay fp32 (see precision).
            self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.tile = settings.tile if settings.tile is not None else auto_tile(self.device)
        self.last: dict = {}  # what the last call read, used and took: for --verbose

    def quality_of(self, picture: Picture, forced: int | None = None) -> int:
        """Forced (here or in the settings), else read from the file's tables, else estimated from the pixels."""
        forced = forced if forced is not None else self.settings.quality
        if forced is not None:
            return forced
        if picture.quality is not None:
            return picture.quality
        return jpeg.blind_quality(self.luma_or_rgb(picture))

    def nearly_lossless(self, picture: Picture) -> bool:
        """A file read at jpeg.NEARLY_LOSSLESS or finer with no trace of a harsher save before: left as decoded."""
        if picture.quality is None or picture.quality < jpeg.NEARLY_LOSSLESS:
            return False
        return not jpeg.shows_harsh_save(self.luma_or_rgb(picture))

    @staticmethod
    def luma_or_rgb(picture: Picture):
        """The 8-bit pixels blind_quality reads."""
        pixels = images.to_uint8(picture.pixels)
        return pixels[..., 0] if picture.gray else pixels

    def condition(self, picture: Picture, quality: float, forced: bool, batch: int) -> torch.Tensor:
        """What the generator is told: the strength, or for a table-conditioned generator the file's tables
        (IJG's at the strength when it is forced or the input has none)."""
        if not getattr(self.model, "uses_tables", False):
            return torch.full((batch,), quality, device=self.device)
        luma, chroma = picture.tables if picture.tables and not forced else jpeg.ijg_tables(int(quality))
        features = jpeg.table_features(luma, None if picture.gray else chroma)
        return torch.from_numpy(features).to(self.device).expand(batch, -1)

    def restore(self, image, *, quality: int | None = None) -> "Image.Image":
        """A path, file bytes or PIL image, restored, as a PIL image with the input's EXIF and ICC in `info`.

        `quality` overrides the strength read from the JPEG's tables (or estimated from the pixels).
        Raises images.ImageError for an unreadable image.
        """
        return images.to_image(self(images.load(image), quality=quality))

    @torch.inference_mode()
    def __call__(self, picture: Picture, *, quality: int | None = None) -> Picture:
        started = time.perf_counter()
        forced = quality if quality is not None else self.settings.quality
        if forced is None and self.nearly_lossless(picture):
            self.last = {"read": picture.quality, "strength": None, "forced": False, "tile": None,
                         "seconds": time.perf_counter() - started}
            return picture.with_pixels(picture.pixels.copy())  # nothing to add (measured: jpeg.NEARLY_LOSSLESS)
        quality = float(self.quality_of(picture, forced))
        image = torch.from_numpy(picture.pixels).permute(2, 0, 1)[None]
        if picture.gray:  # the generators see RGB; a gray image is R = G = B
            image = image.expand(1, 3, -1, -1)

        told = self.condition(picture, quality, forced is not None, 1)  # once per picture; each tile batch shares it

        def run(tiles: torch.Tensor) -> torch.Tensor:
            q = told.expand(tiles.shape[0], *told.shape[1:])
            if self.backend == "onnxruntime":
                out = self.model(tiles, q)
            else:
                tiles = tiles.to(self.device).contiguous(memory_format=torch.channels_last)
                with precision.autocast(self.device, self.precision):
                    out = self.model(tiles, q)
                if self.precision != "fp32" and not torch.isfinite(out).all():
                    # oneDNN's bf16 kernels (AMX Xeon, torch 2.13) gave NaN on tiles 8 pixels wide, whose
                    # bottleneck is one position wide (measured): such a tile is computed again in fp32.
                    out = self.model(tiles, q)
            return out.float().clamp(0, 1).cpu()

        restored = self.run_with_smaller_tiles_on_oom(run, image)
        if picture.gray:
            restored = restored.mean(dim=1, keepdim=True)
        self.last = {"read": picture.quality, "strength": int(quality), "forced": forced is not None,
                     "tile": self.tile, "seconds": time.perf_counter() - started}
        return picture.with_pixels(restored[0].permute(1, 2, 0).numpy())

    def describe(self) -> str:
        """Where and how it runs, e.g. 'cpu (AMD EPYC, AVX2, no native bf16), fp32'."""
        return precision.describe(self.device, self.precision) + f", {self.backend}"

    def describe_last(self) -> str:
        """The last call: the quality the file read (or that was estimated), the strength used, the tile, time."""
        last = self.last
        read = f"quality read {last['read']}" if last["read"] is not None else "no tables (estimated from the pixels)"
        if last["strength"] is None:
            return f"{read}, no earlier harsher save: left as decoded, {last['seconds']:.2f} s"
        tile = f"tile {last['tile']}" if last["tile"] else "whole image"
        strength = f"strength {last['strength']}" + (" (--quality)" if last["forced"] else "")
        return f"{read}, {strength}, {tile}, {self.device} {self.precision} {self.backend}, {last['seconds']:.2f} s"

    def run_with_smaller_tiles_on_oom(self, run, image: torch.Tensor) -> torch.Tensor:
        """Tiled inference; out of memory, halve the tile and try again, down to MIN_TILE.

        The tile that worked is kept for the pictures that follow.
        """
        # Batching tiles pays on a GPU; on a CPU one tile at a time is faster (measured: 0.76 vs 0.61 MP/s).
        batch = 1 if self.device.type == "cpu" else 4
        while True:
            try:
                return tiling.run_tiled(run, image, tile=self.tile, overlap=self.settings.overlap, batch=batch)
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error):
                    raise
                tried = self.tile or max(image.shape[-2:])
                smaller = tried // 2 // tiling.GRID * tiling.GRID
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if smaller < MIN_TILE:
                    raise MemoryError(f"even {tried}-pixel tiles do not fit in memory") from None
                print(f"dequant: out of memory with {tried}-pixel tiles, retrying with {smaller}", file=sys.stderr)
                self.tile = smaller


MIN_TILE = 64


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError that says so."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    message = str(error).lower()
    return any(words in message for words in ("can't allocate memory", "out of memory", "failed to allocate memory"))


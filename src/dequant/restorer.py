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

from dequant import condition, consistency, images, jpeg, runtime, tiling
from dequant.images import Picture


INT8_OVERLAP = 128


@dataclass(frozen=True)
class Settings:
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | int8: decided from the CPU's features (runtime.precision_for)
    tile: int | None = None  # pixels per tile side; 0 = whole image; None = from free memory
    # Context around each tile. Measured reach of dequant-long (step 24000, fp32): inverting one macroblock moves
    # outputs 7 levels 48 px away, 0.5 at 64, 0.04 at 80; 80 keeps tiles within 1/255 of the whole-image run.
    overlap: int = 80
    quality: int | None = None  # force the JPEG quality instead of reading or estimating it
    threads: int = 0  # CPU threads; 0 = every core (or OMP_NUM_THREADS when set)
    backend: str = "auto"  # auto | torch | onnxruntime (see runtime.pick_backend)
    consistent: bool = True  # keep the output inside the JPEG's quantization cells (dequant.consistency)


class Restorer:
    """A generator placed on its device, ready to restore pictures one after another.

    `model`: a registry name, a weight file or hf:// URL, a torch module that declares its `contract`
    (dequant.archs.Contract), or None for the `mode`'s default (fidelity: highest PSNR; perceptual:
    GAN-trained); a registry model with an int8 twin computes in int8 where the runtime picks it.
    `settings`: device, precision, tiles, keeping to the file's cells. `models`: the registry (default: weights.toml).
    """

    def __init__(self, model: "torch.nn.Module | str | os.PathLike | None" = None, settings: Settings = Settings(),
                 *, mode: str = "fidelity", models: dict | None = None):
        int8_twin = None  # a registry model's int8 twin, loaded only if int8 is chosen
        if not isinstance(model, torch.nn.Module):
            from dequant import loading, registry

            models = models if models is not None else registry.load()
            model, self.name = loading.load_model(None if model is None else str(model), models, mode)
            int8_twin = registry.int8_twin(models, self.name)
            if int8_twin and not (int8_twin.int8_auto or settings.precision == "int8"):
                int8_twin = None  # a twin not yet as good as its model runs only when asked for
        else:
            self.name = type(model).__name__
        self.settings = settings
        contract = model.contract
        self.runtime = runtime.plan(settings.device, settings.precision, settings.backend, settings.tile,
                                    settings.threads, contract.precisions + (("int8",) if int8_twin else ()))
        if self.runtime.precision == "int8" and int8_twin:
            model = loading.load_entry(int8_twin)
        if self.runtime.warning:
            print(f"dequant: warning: {self.runtime.warning}", file=sys.stderr)
        self.device, self.precision, self.backend = self.runtime.device, self.runtime.precision, self.runtime.backend
        if self.backend == "onnxruntime":
            from dequant import onnx_graph

            self.model = onnx_graph.OnnxGenerator(onnx_graph.cached_graph(model.cpu()), self.device,
                                                  torch.get_num_threads(), contract)
        else:
            # Channels-last convolutions: 1.2-2.2x faster on the CPU for our generators (measured on a
            # 481x321 image), outputs within 1/255 of the default layout. Weights stay fp32 (see runtime).
            self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.tile = self.runtime.tile if contract.tiling_safe else 0  # shrinks when a tile runs out of memory
        # In int8 a tile edge's faint reach flips a rounding now and then, and the flip travels on as a whole
        # level: 80 pixels of context left 18 % of pixels 1-3 levels off the whole-image run, 128 none (measured).
        self.overlap = max(settings.overlap, INT8_OVERLAP) if self.precision == "int8" else settings.overlap
        self.last: dict = {}  # what the last call read, used and took: for --verbose

    def quality_of(self, picture: Picture, forced: int | None = None) -> int:
        """Forced (here or in the settings), else read from the file's tables, else estimated from the pixels."""
        forced = forced if forced is not None else self.settings.quality
        if forced is not None:
            return forced
        if picture.quality is not None:
            return picture.quality
        return jpeg.blind_quality(images.luma_or_rgb(picture))

    def nearly_lossless(self, picture: Picture) -> bool:
        """A file read at jpeg.NEARLY_LOSSLESS or finer with no trace of a harsher save before: left as decoded."""
        if picture.quality is None or picture.quality < jpeg.NEARLY_LOSSLESS:
            return False
        return not jpeg.shows_harsh_save(images.luma_or_rgb(picture))

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

        # Once per picture; each batch of tiles shares it. A forced strength is told with libjpeg's tables.
        told = condition.of(self.model.contract.condition, quality, None if forced is not None else picture.tables,
                            picture.gray, picture.pixels)

        def run(tiles: torch.Tensor) -> torch.Tensor:
            q = condition.batch(told, tiles.shape[0]).to(self.device)
            if self.backend == "onnxruntime":
                return self.model(tiles, q)  # the graph clamps to [0, 1] itself
            tiles = tiles.to(self.device).contiguous(memory_format=torch.channels_last)
            with runtime.autocast(self.device, self.precision):
                out = self.model(tiles, q)
            if self.precision != "fp32" and not torch.isfinite(out).all():
                # oneDNN's bf16 kernels (AMX Xeon, torch 2.13) gave NaN on tiles 8 pixels wide, whose
                # bottleneck is one position wide (measured): such a tile is computed again in fp32.
                out = self.model(tiles, q)
            return out.float().clamp(0, 1).cpu()

        restored = self.run_with_smaller_tiles_on_oom(run, image)
        if picture.gray:
            restored = restored.mean(dim=1, keepdim=True)
        pixels, cells = self.keep_to_file(picture, restored[0].permute(1, 2, 0).numpy())
        self.last = {"read": picture.quality, "strength": int(quality), "forced": forced is not None,
                     "tile": self.tile, "cells": cells, "seconds": time.perf_counter() - started}
        return picture.with_pixels(pixels)

    def keep_to_file(self, picture: Picture, pixels):
        """The restoration with uniform areas as decoded and moved into the file's quantization cells, and a word
        on what was done (--verbose). A JPEG whose coefficients cannot be read is restored without the cells,
        and says why on stderr."""
        if not self.settings.consistent:
            return pixels, "cells not kept (--no-consistent)"
        if picture.jpeg_file is None:
            return consistency.keep(picture.pixels, pixels)[0], "no coefficients (not a JPEG file)"
        try:
            coefficients = consistency.read(picture.jpeg_file)
            return consistency.keep(picture.pixels, pixels, coefficients)
        except consistency.CoefficientsError as error:
            name = picture.jpeg_file if isinstance(picture.jpeg_file, os.PathLike) else "input"
            print(f"dequant: {name}: {error}; restored without keeping to its quantization cells", file=sys.stderr)
            return consistency.keep(picture.pixels, pixels)[0], f"cells not kept ({error})"

    def describe(self) -> str:
        """Where and how it runs, e.g. 'cpu (AMD EPYC, AVX2, no native bf16), fp32, onnxruntime'."""
        return self.runtime.describe()

    def describe_last(self) -> str:
        """The last call: the quality the file read (or that was estimated), the strength used, the tile, time."""
        last = self.last
        read = f"quality read {last['read']}" if last["read"] is not None else "no tables (estimated from the pixels)"
        if last["strength"] is None:
            return f"{read}, no earlier harsher save: left as decoded, {last['seconds']:.2f} s"
        tile = f"tile {last['tile']}" if last["tile"] else "whole image"
        strength = f"strength {last['strength']}" + (" (--quality)" if last["forced"] else "")
        return (f"{read}, {strength}, {tile}, {self.device} {self.precision} {self.backend}, {last['cells']}, "
                f"{last['seconds']:.2f} s")

    def run_with_smaller_tiles_on_oom(self, run, image: torch.Tensor) -> torch.Tensor:
        """Tiled inference; out of memory, halve the tile and try again, down to MIN_TILE.

        The tile that worked is kept for the pictures that follow.
        """
        # Batching tiles pays on a GPU; on a CPU one tile at a time is faster (measured: 0.76 vs 0.61 MP/s).
        batch = 1 if self.device.type == "cpu" else 4
        while True:
            try:
                return tiling.run_tiled(run, image, tile=self.tile, overlap=self.overlap, batch=batch)
            except (RuntimeError, MemoryError) as error:
                if not runtime.is_out_of_memory(error):
                    raise
                tried = self.tile or max(image.shape[-2:])
                smaller = tried // 2 // tiling.GRID * tiling.GRID
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if smaller < runtime.MIN_TILE:
                    raise MemoryError(f"even {tried}-pixel tiles do not fit in memory") from None
                print(f"dequant: out of memory with {tried}-pixel tiles, retrying with {smaller}", file=sys.stderr)
                self.tile = smaller


"""The command line: each command parses its options and calls one library function.

Heavy modules (torch, the pipelines) are imported inside the commands, so
`dequant --help` and `dequant --version` answer at once.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from dequant import __version__

app = typer.Typer(
    help="Restore JPEG-compressed images with neural generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"dequant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
):
    pass


Inputs = Annotated[list[str], typer.Argument(help="Image files or folders; - reads standard input.", show_default=False)]
Output = Annotated[str, typer.Option("--output", "-o", help="Output file, folder, or - for standard output.", show_default=False)]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders, mirroring the tree.")]
SkipExisting = Annotated[bool, typer.Option(help="Leave outputs that already exist alone (resumes a batch).")]
Overwrite = Annotated[bool, typer.Option(help="Replace outputs that already exist.")]
MaxMegapixels = Annotated[float, typer.Option(min=0, help="Refuse larger images, e.g. decompression bombs.")]
Backend = Annotated[str, typer.Option(help="auto|torch|onnxruntime: auto runs onnxruntime where the CPU computes in fp32 or int8, else torch.")]
Consistent = Annotated[bool, typer.Option(help="Keep the output inside the JPEG's quantization cells: it never contradicts what the file's coefficients say.")]
Mode = Annotated[str, typer.Option(help="fidelity (highest PSNR) or perceptual (GAN-trained, sharper): the mode's default model, unless --model names one.")]
FORMAT_CHOICES = ["png", "jpg", "webp", "tif"]


def fail_usage(message: str):
    typer.echo(f"dequant: {message}", err=True)
    raise typer.Exit(2)


def command_line() -> str:
    """This invocation, quoted so it can be pasted back: recorded beside trained weights and bench tables."""
    import shlex
    import sys

    return shlex.join(["dequant", *sys.argv[1:]])


def finish(outcome):
    raise typer.Exit(outcome.exit_code)


@app.command()
def train(
    arch: Annotated[Optional[str], typer.Option(help="Generator architecture (default: the config's, qunet).")] = None,
    data: Annotated[list[Path], typer.Option(help="Folder(s) of clean training images.")] = ...,
    val: Annotated[list[Path], typer.Option(help="Folder(s) of validation images (checkpoint choice).")] = ...,
    out: Annotated[Path, typer.Option(help="Run directory: checkpoints, logs, exported model.")] = ...,
    steps: Annotated[Optional[int], typer.Option(help="Training steps (overrides the config).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="TOML file of TrainConfig settings.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a setting: key=value (TOML value).")] = [],
):
    """Train a generator on clean images compressed on the fly."""
    from dequant import train as training

    overrides = ([f'arch="{arch}"'] if arch else []) + set_ + ([f"steps={steps}"] if steps else [])
    missing = [str(p) for p in [*data, *val] if not p.exists()]
    if missing:
        fail_usage(f"no such data folder: {', '.join(missing)}")
    try:
        cfg = training.load_config(config, overrides)
        training.train(cfg, data, val, out, resume, command_line())
    except (ValueError, OSError) as error:  # bad settings, or no usable images
        fail_usage(str(error))
    except training.TrainingStopped as stopped:
        typer.echo(f"dequant: {stopped}", err=True)
        raise typer.Exit(128 + stopped.signum)


def restore(
    inputs: Inputs,
    output: Output,
    format: Annotated[Optional[str], typer.Option(help=f"Output format: {'|'.join(FORMAT_CHOICES)} (default: from -o, else png).")] = None,
    recursive: Recursive = False,
    skip_existing: SkipExisting = False,
    overwrite: Overwrite = False,
    max_megapixels: MaxMegapixels = 100,
    model: Annotated[Optional[str], typer.Option(help="Registry name, weight file, or hf://org/repo/file.safetensors[@rev].")] = None,
    mode: Mode = "fidelity",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    precision: Annotated[str, typer.Option(help="auto|fp32|bf16|fp16|int8: auto = bf16 where the CPU runs it natively, else int8 where the model has an int8 twin and the CPU int8 dot products, else fp32; half on a GPU.")] = "auto",
    backend: Backend = "auto",
    tile: Annotated[Optional[int], typer.Option(help="Tile side in pixels; 0 = whole image; default from free memory.")] = None,
    overlap: Annotated[int, typer.Option(help="Context pixels around each tile.")] = 80,  # Settings.overlap; torch loads lazily
    quality: Annotated[Optional[int], typer.Option(min=1, max=100, help="Force the JPEG quality instead of reading it from the file.")] = None,
    consistent: Consistent = True,
    reference: Annotated[Optional[Path], typer.Option(help="Clean original of a single input: report the PSNR gain.")] = None,
    shard: Annotated[Optional[str], typer.Option(help="Process only shard i/N of the sorted inputs (e.g. a Slurm array task).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run the batch on Ray Data (pip install 'dequant[ray]').")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: start one locally).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray actors, one model each.")] = 2,
    gpus_per_worker: Annotated[float, typer.Option(min=0, help="GPUs per Ray actor.")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say the device and precision, and per file the quality read, strength, tile and time.")] = False,
):
    """Restore JPEG-compressed images (alias: dequantize)."""
    if format is not None and format not in FORMAT_CHOICES:
        fail_usage(f"--format must be one of {', '.join(FORMAT_CHOICES)}")
    check_device_and_precision(device, precision)
    from dequant import batch, images, loading, raybatch, registry, weights
    from dequant.restorer import Restorer, Settings

    try:
        fmt = batch.output_format(output, format, "png")
        jobs = batch.plan(inputs, output, recursive=recursive, extension="." + fmt.lower().replace("jpeg", "jpg"))
        if shard:
            jobs = batch.shard(jobs, *batch.parse_shard(shard))
        if reference is not None and (len(jobs) != 1 or jobs[0].source is None or jobs[0].target is None):
            raise batch.UsageError("--reference takes a single input file and output file")
        settings = Settings(device, precision, tile, overlap, quality, backend=backend, consistent=consistent)
        if ray:
            _, model_name = loading.load_model(model, registry.load(), mode)  # a bad model fails here, not in the actors
            raybatch.check(jobs)
        else:
            restorer = Restorer(model, settings, mode=mode)
            model_name = restorer.name
    except (batch.UsageError, weights.WeightsError, ValueError) as error:
        fail_usage(str(error))
    if ray:
        outcome = raybatch.run_jobs(jobs, model=model_name, settings=settings, format=fmt, skip_existing=skip_existing,
                               overwrite=overwrite, max_pixels=int(max_megapixels * 1e6), address=ray_address,
                               workers=workers, gpus_per_worker=gpus_per_worker)
    else:
        if verbose:
            typer.echo(f"dequant: model {model_name} on {restorer.describe()}", err=True)
        outcome = batch.run_jobs(jobs, lambda picture: images.encode(restorer(picture), fmt), verb="restored",
                            skip_existing=skip_existing, overwrite=overwrite, max_pixels=int(max_megapixels * 1e6),
                            describe=restorer.describe_last if verbose else None)
    if reference is not None and not outcome.failed:
        report_gain(jobs[0], reference)
    finish(outcome)


def check_device_and_precision(device: str, precision: str):
    from dequant.runtime import CHOICES, DEVICES

    if precision not in CHOICES or device not in DEVICES:
        fail_usage(f"--precision takes {'|'.join(CHOICES)} and --device {'|'.join(DEVICES)}")


def report_gain(job, reference: Path):
    """PSNR of the input and of the output against a clean reference, to stderr."""
    from dequant import images
    from dequant.metrics import psnr

    try:
        clean, before, after = (images.read(p).pixels for p in (reference, job.source, job.target))
        if not clean.shape == before.shape == after.shape:
            raise images.ImageError("the reference's size or channels differ from the input's")
    except images.ImageError as error:
        fail_usage(f"{reference}: {error}")
    psnr_in, psnr_out = psnr(before, clean), psnr(after, clean)
    typer.echo(f"{job.target}: PSNR against {reference}: input {psnr_in:.2f} dB, restored {psnr_out:.2f} dB "
               f"({psnr_out - psnr_in:+.2f} dB)", err=True)


app.command("restore")(restore)
app.command("dequantize", help="Alias of restore.")(restore)


@app.command()
def compare(
    input: Annotated[Path, typer.Argument(help="The JPEG (or any image) to restore.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The figure, a PNG file.", show_default=False)],
    model: Annotated[list[str], typer.Option(help="A model to show; repeat for several (default: the fidelity default).")] = [],
    mode: Annotated[list[str], typer.Option(help="A mode's default model to show (fidelity, perceptual); repeatable.")] = [],
    reference: Annotated[Optional[Path], typer.Option(help="The clean original: shown last, and each panel's PSNR and LPIPS against it (whole image).")] = None,
    crop: Annotated[Optional[str], typer.Option(help="X,Y,W,H of the region to show (default: where the models change most, on the 8x8 grid).")] = None,
    size: Annotated[int, typer.Option(min=8, help="Side of the automatic crop in pixels.")] = 128,
    zoom: Annotated[int, typer.Option(min=1, max=16, help="Nearest-neighbour enlargement, so blocks stay visible.")] = 3,
    quality: Annotated[Optional[int], typer.Option(min=1, max=100, help="Force the JPEG quality instead of reading it from the file.")] = None,
    overwrite: Overwrite = False,
    lpips_weights: Annotated[Optional[Path], typer.Option(help="Folder with AlexNet and LPIPS safetensors (default ../shared/weights).")] = None,
):
    """Before/after figure: the input beside each model's restoration (and the reference), labelled."""
    from dequant import compare as comparing
    from dequant import files, images, weights

    if output.suffix.lower() != ".png":
        fail_usage(f"-o {output}: the figure is a PNG; name it .png")
    if output.exists() and not overwrite:
        fail_usage(f"output {output} exists (use --overwrite)")
    try:
        image, shown, panels = comparing.compare(input, models=[(spec, "fidelity") for spec in model] + [(None, m) for m in mode],
                                                 reference=reference, crop=crop, size=size, zoom=zoom, quality=quality,
                                                 lpips_weights=lpips_weights)
    except (images.ImageError, weights.WeightsError, ValueError) as error:
        fail_usage(str(error))
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    files.write_atomic(output, buffer.getvalue())
    typer.echo(f"{output}: {panels} panels, crop {','.join(map(str, shown))}, zoom {zoom}", err=True)


@app.command()
def export(
    model: Annotated[Optional[str], typer.Argument(help="Registry name, weight file or hf:// URL (default: the default model).", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The ONNX file to write.", show_default=False)] = ...,
    overwrite: Overwrite = False,
    int8: Annotated[bool, typer.Option("--int8", help="Export the model's int8 twin (weights.toml): QuantizeLinear/DequantizeLinear around each convolution, which runtimes fuse into int8 kernels.")] = False,
):
    """Export a model to ONNX: dynamic batch and size, quality as a named input, metadata inside."""
    from dequant import loading, onnx_graph, registry, weights
    from dequant.int8 import is_quantized as quantized

    if output.exists() and not overwrite:
        fail_usage(f"output {output} exists (use --overwrite)")
    try:
        entries = registry.load()
        generator, name = loading.load_model(model, entries)
        if int8 and not quantized(generator):
            twin = registry.int8_twin(entries, name)
            if twin is None:
                raise ValueError(f"--int8: {name} has no int8 twin in weights.toml (see docs/int8.md)")
            generator, name = loading.load_entry(twin), twin.name
        entry = entries.get(name)
        data = onnx_graph.to_onnx(generator, onnx_graph.export_metadata(name, entry, entry.sha256 if entry else None))
    except (weights.WeightsError, ValueError) as error:
        fail_usage(str(error))
    from dequant import files

    files.write_atomic(output, data)
    typer.echo(f"{output}: {name}, {len(data) / 1e6:.1f} MB, sha256 {onnx_graph.sha256(data)}")


@app.command()
def quantize(
    inputs: Inputs,
    output: Output,
    quality: Annotated[int, typer.Option("--quality", "-q", min=1, max=100, help="JPEG quality (libjpeg scale).")] = ...,
    subsampling: Annotated[str, typer.Option(help="Chroma subsampling: 4:2:0 or 4:4:4.")] = "4:2:0",
    gray: Annotated[bool, typer.Option(help="Write one-channel (luma) JPEGs.")] = False,
    recursive: Recursive = False,
    skip_existing: SkipExisting = False,
    overwrite: Overwrite = False,
    max_megapixels: MaxMegapixels = 100,
):
    """Compress images to JPEG with libjpeg: the degradation dequant undoes."""
    if subsampling not in ("4:2:0", "4:4:4"):
        fail_usage("--subsampling takes 4:2:0 or 4:4:4")
    from dequant import batch, images

    try:
        batch.output_format(output, "jpg", "jpg")
        jobs = batch.plan(inputs, output, recursive=recursive, extension=".jpg")
    except batch.UsageError as error:
        fail_usage(str(error))

    def compress(picture):
        return images.encode(images.grayscale(picture) if gray else picture, "JPEG", quality=quality, subsampling=subsampling)

    finish(batch.run_jobs(jobs, compress, verb="quantized", skip_existing=skip_existing, overwrite=overwrite,
                     max_pixels=int(max_megapixels * 1e6)))


@app.command()
def models(
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON list with everything the registry says.")] = False,
    long: Annotated[bool, typer.Option("--long", "-l", help="Add the descriptions and where the weights are.")] = False,
):
    """List the models in the registry."""
    import json

    from dequant import registry

    rows = [registry.describe(entry) for entry in registry.load().values()]
    if json_:
        typer.echo(json.dumps(rows, indent=2))
        return
    if long:  # a block per model: readable at any width
        for row in rows:
            marks = " (default)" if row["default"] else " (perceptual)" if row["perceptual_default"] else ""
            typer.echo(f"{row['name']}{marks}: {row['arch']}, {row['params']:,} parameters, {row['location']}")
            for line in (row["description"], row["bench_summary"]):
                if line:
                    typer.echo(f"  {line}")
        return
    from rich.console import Console
    from rich.table import Table

    # Fits 80 columns: one figure each, LIVE1 at quality 10 (PSNR for fidelity, LPIPS for GANs).
    table = Table("name", "arch", "params", "LIVE1 Q10 dB", "LPIPS",
                  caption="dequant models --long: descriptions; --json: everything")
    for row in rows:
        live1 = row["bench"].get("LIVE1", {})
        psnr, lpips = (live1.get(m, [None])[0] if live1.get("qualities", [None])[0] == 10 else None for m in ("psnr", "lpips"))
        marks = " (default)" if row["default"] else " (perceptual)" if row["perceptual_default"] else ""
        table.add_row(row["name"] + marks, row["arch"], f"{row['params']:,}", f"{psnr:.2f}" if psnr else "-",
                      f"{lpips:.3f}" if lpips else "-")
    Console().print(table)


@app.command()
def bench(
    model: Annotated[list[str], typer.Option(help="Model name, file or hf:// URL; repeat for several; 'jpeg' = the input only.")] = [],
    mode: Mode = "fidelity",
    data: Annotated[list[str], typer.Option(help="Folder of reference images, or live1 | bsds500 | classic5 under $DEQUANT_DATA.")] = ["live1"],
    quality: Annotated[str, typer.Option(help="Comma-separated JPEG qualities.")] = "10,20,30,40",
    gray: Annotated[bool, typer.Option(help="Grayscale protocol: BT.601 luma, one-channel JPEG.")] = False,
    double: Annotated[Optional[str], typer.Option(help="Double JPEG: comma-separated QF1, each compressed before --quality (QF2) on a shifted grid.")] = None,
    shift: Annotated[str, typer.Option(help="Double JPEG: rows,columns cropped between the two compressions.")] = "4,4",
    metrics: Annotated[str, typer.Option(help="Comma-separated: psnr,ssim,psnrb,lpips.")] = "psnr,ssim,psnrb,lpips",
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images of each set.")] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the records as JSON.")] = None,
    markdown_file: Annotated[Optional[Path], typer.Option("--markdown", help="Write the table as Markdown.")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    precision: Annotated[str, typer.Option(help="auto|fp32|bf16|fp16|int8, as for restore.")] = "auto",
    backend: Backend = "auto",
    tile: Annotated[Optional[int], typer.Option(help="Tile side (default from free memory).")] = None,
    consistent: Consistent = True,
    lpips_weights: Annotated[Optional[Path], typer.Option(help="Folder with AlexNet and LPIPS safetensors (default ../shared/weights).")] = None,
):
    """Benchmark models with the field's protocol: PSNR, SSIM, PSNR-B, LPIPS and speed."""
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dequant import bench as benchmark
    from dequant import weights
    from dequant.restorer import Settings

    check_device_and_precision(device, precision)
    try:
        qualities = [int(q) for q in quality.split(",")]
        firsts = [int(q) for q in double.split(",")] if double else None
        rows, columns = (int(n) for n in shift.split(","))
        wanted = {m.strip() for m in metrics.split(",")}
        if not wanted <= set(benchmark.METRICS) or not all(1 <= q <= 100 for q in qualities + (firsts or [])):
            raise ValueError("--metrics takes psnr,ssim,psnrb,lpips and --quality/--double numbers from 1 to 100")
        if not (0 <= rows < 8 and 0 <= columns < 8):
            raise ValueError("--shift takes rows,columns from 0 to 7")
        for name in data:
            benchmark.resolve_data(name)
    except ValueError as error:
        fail_usage(str(error))
    err = Console(stderr=True)
    with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as progress:
        try:
            records = benchmark.measure(model, data, qualities, mode=mode, gray=gray, wanted=wanted, limit=limit,
                                        settings=Settings(device=device, precision=precision, tile=tile, backend=backend,
                                                          consistent=consistent),
                                        lpips_weights=lpips_weights, progress=progress, first_qualities=firsts,
                                        shift=(rows, columns))
        except weights.WeightsError as error:
            fail_usage(str(error))
    console = Console()
    if not console.is_terminal:  # a file or a pipe: never squeeze the figures into 80 columns
        console = Console(width=400)
    console.print(benchmark.table(records))
    if json_file:
        json_file.write_text(json.dumps(benchmark.as_dicts(records), indent=2) + "\n")
    if markdown_file:
        markdown_file.write_text(benchmark.markdown(records, command_line()))


def main():
    app()

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


@app.command()
def train(
    arch: Annotated[str, typer.Option(help="Generator architecture.")] = "qunet",
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

    overrides = [f"arch={arch!r}".replace("'", '"'), *set_] + ([f"steps={steps}"] if steps else [])
    try:
        cfg = training.load_config(config, overrides)
    except (ValueError, OSError) as error:
        raise typer.BadParameter(str(error)) from None
    training.train(cfg, data, val, out, resume, training.command_line())


Inputs = Annotated[list[str], typer.Argument(help="Image files or folders; - reads standard input.", show_default=False)]
Output = Annotated[str, typer.Option("--output", "-o", help="Output file, folder, or - for standard output.", show_default=False)]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders, mirroring the tree.")]
SkipExisting = Annotated[bool, typer.Option(help="Leave outputs that already exist alone (resumes a batch).")]
Overwrite = Annotated[bool, typer.Option(help="Replace outputs that already exist.")]
FORMAT_CHOICES = ["png", "jpg", "webp", "tif"]


def fail_usage(message: str):
    typer.echo(f"dequant: {message}", err=True)
    raise typer.Exit(2)


def finish(outcome):
    raise typer.Exit(1 if outcome.failed else 0)


def restore(
    inputs: Inputs,
    output: Output,
    format: Annotated[Optional[str], typer.Option(help=f"Output format: {'|'.join(FORMAT_CHOICES)} (default: from -o, else png).")] = None,
    recursive: Recursive = False,
    skip_existing: SkipExisting = False,
    overwrite: Overwrite = False,
    model: Annotated[Optional[str], typer.Option(help="Registry name, weight file, or hf://org/repo/file.safetensors[@rev].")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32|fp16|bf16 (half precisions on a GPU).")] = "fp32",
    tile: Annotated[Optional[int], typer.Option(help="Tile side in pixels; 0 = whole image; default from free memory.")] = None,
    overlap: Annotated[int, typer.Option(help="Context pixels around each tile.")] = 48,
    quality: Annotated[Optional[int], typer.Option(min=1, max=100, help="Force the JPEG quality instead of reading it from the file.")] = None,
):
    """Restore JPEG-compressed images (alias: dequantize)."""
    if format is not None and format not in FORMAT_CHOICES:
        fail_usage(f"--format must be one of {', '.join(FORMAT_CHOICES)}")
    if precision not in ("fp32", "fp16", "bf16") or device not in ("auto", "cpu", "cuda", "mps"):
        fail_usage("--precision takes fp32|fp16|bf16 and --device auto|cpu|cuda|mps")
    from dequant import batch, images, registry, weights
    from dequant.restore import Restorer, Settings

    try:
        fmt = batch.output_format(output, format, "png")
        jobs = batch.plan(inputs, output, recursive=recursive, extension="." + fmt.lower().replace("jpeg", "jpg"))
        generator, _ = weights.load_model(model, registry.load())
        restorer = Restorer(generator, Settings(device, precision, tile, overlap, quality))
    except (batch.UsageError, weights.WeightsError, ValueError) as error:
        fail_usage(str(error))
    finish(batch.run(jobs, lambda picture: images.encode(restorer(picture), fmt), verb="restored",
                     skip_existing=skip_existing, overwrite=overwrite))


app.command("restore")(restore)
app.command("dequantize", help="Alias of restore.")(restore)


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

    finish(batch.run(jobs, compress, verb="quantized", skip_existing=skip_existing, overwrite=overwrite))


@app.command()
def models(json_: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False):
    """List the models in the registry."""
    import json

    from dequant import registry

    rows = [registry.describe(entry) for entry in registry.load().values()]
    if json_:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "arch", "params", "weights", "description", "bench")
    for row in rows:
        table.add_row(row["name"] + (" (default)" if row["default"] else ""), row["arch"], f"{row['params']:,}",
                      row["location"], row["description"], row["bench_summary"])
    Console().print(table)


def main():
    app()

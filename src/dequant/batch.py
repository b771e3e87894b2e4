"""Batches: turn `INPUT... -o OUTPUT` into jobs, run each, report, carry on past bad files.

Shared by `restore` and `quantize`: they differ only in what they do to one
picture. Rules: never overwrite an input; overwrite an existing output only
when asked; write atomically; one line per failure; a one-line summary.
"""

import errno
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dequant import files, images
from dequant.images import IMAGE_SUFFIXES

STDIO = "-"


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""


# Failures where the machine ran short, not the input (exit code 3). Reasons are plain strings, so
# they keep their meaning when they come back from Ray workers.
OUT_OF_MEMORY, NO_ROOM = "out of memory", "no room for the output"
DISK_MARGIN = 16 * 2**20  # leave this much free beside each output, for the file system's own needs


@dataclass(frozen=True)
class Job:
    source: Path | None  # None: standard input
    target: Path | None  # None: standard output

    @property
    def name(self) -> str:
        return str(self.source) if self.source else "<stdin>"


def output_format(output: str, format: str | None, default: str) -> str:
    """The Pillow format name from --format, else -o's extension, else the default."""
    suffix = Path(output).suffix.lower().lstrip(".")
    if format and suffix in images.FORMATS and images.FORMATS[suffix] != images.FORMATS[format]:
        raise UsageError(f"--format {format} contradicts the extension of -o {output}")
    return images.FORMATS[format or (suffix if suffix in images.FORMATS else default)]


def plan(inputs: list[str], output: str, *, recursive: bool, extension: str) -> list[Job]:
    """One job per input image; -o is a file for one input, otherwise a folder mirrored by the inputs."""
    check_output_extension(output)
    to_file = output == STDIO or Path(output).suffix.lower().lstrip(".") in images.FORMATS
    if STDIO in inputs:
        if len(inputs) > 1 or not to_file:
            raise UsageError("reading standard input (-) takes one input and a file or - for -o")
        return [Job(None, None if output == STDIO else Path(output))]
    if to_file:
        if len(inputs) != 1 or Path(inputs[0]).is_dir():
            raise UsageError(f"-o {output} is a file; several inputs or a folder need a folder for -o")
        return [Job(Path(inputs[0]), None if output == STDIO else Path(output))]
    jobs = []
    for given in map(Path, inputs):
        if given.is_dir():
            pattern = "**/*" if recursive else "*"
            for source in sorted(p for p in given.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                jobs.append(Job(source, Path(output) / source.relative_to(given).with_suffix(extension)))
        else:  # a missing file is a bad input, reported when its turn comes
            jobs.append(Job(given, Path(output) / given.with_suffix(extension).name))
    clashes = sorted(str(t) for t, n in Counter(j.target for j in jobs).items() if n > 1)
    if clashes:
        raise UsageError(f"several inputs would write the same output: {', '.join(clashes[:3])}")
    return jobs


# Extensions of image formats that dequant reads or that people ask for but does not write: -o out.gif
# is a mistake to point out, not a folder to create.
OTHER_IMAGE_EXTENSIONS = {".gif", ".bmp", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".tga", ".ppm", ".pgm"}


def check_output_extension(output: str) -> None:
    suffix = Path(output).suffix.lower()
    if suffix in OTHER_IMAGE_EXTENSIONS and suffix.lstrip(".") not in images.FORMATS:
        writable = ", ".join(sorted({"." + name for name in images.FORMATS}))
        raise UsageError(f"-o {output}: cannot write {suffix} files; output formats are {writable}")


def parse_shard(text: str) -> tuple[int, int]:
    """"i/N" -> (i, N) with 0 <= i < N."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise UsageError(f"--shard {text}: want i/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return i, n


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Every count-th job of the list sorted by input path, starting at index: the shards
    0/N .. N-1/N together cover each job exactly once, whatever order the inputs were given in."""
    return sorted(jobs, key=lambda job: str(job.source))[index::count]


@dataclass
class Outcome:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    short: bool = False  # some job failed for lack of memory or disk

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some input failed; 3 the machine ran short of memory or disk."""
        return 3 if self.short else 1 if self.failed else 0


def run_jobs(jobs: list[Job], process: Callable[[images.Picture], bytes], *, verb: str,
        skip_existing: bool = False, overwrite: bool = False, max_pixels: int = images.MAX_PIXELS,
        describe: Callable[[], str] | None = None) -> Outcome:
    """Run every job in this process; a failure is reported in one line and the batch goes on.

    `describe`, when given, says how the last job went: a line per done job on stderr (--verbose).
    """
    def one(job: Job) -> tuple[str, str | None]:
        reason = run_job(job, process, skip_existing, overwrite, max_pixels)
        if describe and reason is None:
            print(f"dequant: {job.name}: {describe()}", file=sys.stderr, flush=True)
        return job.name, reason

    return report(map(one, jobs), len(jobs), verb)


def report(results: Iterable[tuple[str, str | None]], total: int, verb: str) -> Outcome:
    """Consume (input name, failure reason or None or "skipped") as jobs finish: a progress bar
    on a terminal, one line per failure, and a one-line summary, all on stderr."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    outcome, started = Outcome(), time.monotonic()
    columns = [TextColumn(verb), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.description}")]
    with Progress(*columns, console=err, disable=total < 2 or not err.is_terminal, transient=True) as progress:
        task = progress.add_task("", total=total)
        for name, reason in results:
            if reason == "skipped":
                outcome.skipped += 1
            elif reason:
                outcome.failed.append((name, reason))
                outcome.short |= reason.startswith((OUT_OF_MEMORY, NO_ROOM))
                err.print(f"dequant: {name}: {reason}", markup=False)
            else:
                outcome.done += 1
            progress.update(task, advance=1, description=name)
    summary = f"{verb} {outcome.done}, skipped {outcome.skipped}, failed {len(outcome.failed)} in {time.monotonic() - started:.1f} s"
    err.print(summary, markup=False)
    return outcome


def run_job(job: Job, process, skip_existing: bool, overwrite: bool, max_pixels: int = images.MAX_PIXELS) -> str | None:
    """None on success, "skipped", or the reason the job failed."""
    target = job.target
    if target is not None and target.exists():
        if job.source is not None and target.resolve() == job.source.resolve():
            return "refusing to overwrite the input itself"
        if skip_existing:
            return "skipped"
        if not overwrite:
            return f"output {target} exists (use --overwrite or --skip-existing)"
    try:
        source = sys.stdin.buffer.read() if job.source is None else job.source
        if job.source is not None and not job.source.is_file():
            return "no such file"
        payload = process(images.read(source, max_pixels))
        if target is None:
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        else:
            write_output(target, payload)
    except (images.ImageError, ValueError) as error:
        return str(error)
    except MemoryError as error:
        return f"{OUT_OF_MEMORY}{f' ({error})' if str(error) else ''}"
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return f"{NO_ROOM}: {error.strerror} (nothing was written)"
        return str(error)
    return None


def write_output(target: Path, payload: bytes) -> None:
    """Check the free space first, then write atomically: a full disk never gets a half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < len(payload) + DISK_MARGIN:
        raise OSError(errno.ENOSPC, f"{len(payload) / 2**20:.1f} MB to write, {free / 2**20:.1f} MB free on the disk")
    files.write_atomic(target, payload)

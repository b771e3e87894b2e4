"""Writing files so that a kill mid-write never leaves a broken one: the one atomic writer."""

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic(path: Path):
    """Yields a hidden temporary path beside `path` to write; then flushes it to disk and renames it.

    A killed run never leaves a partial file, only possibly `.NAME.part`, which the next write of NAME
    replaces. A failed write removes its temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, payload: bytes) -> None:
    """`payload` as the whole of `path`, atomically (see `atomic`)."""
    with atomic(path) as tmp:
        tmp.write_bytes(payload)

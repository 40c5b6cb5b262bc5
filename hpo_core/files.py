"""Writing files so that readers see the old file or the new one, never half of one.

Every file sweepflow writes for people (reports, checklists, next specs, tables, checkpoints)
goes through here: a temporary file in the target's folder, flushed to disk, renamed into place,
and the folder synced so the rename survives a machine crash. On failure the temporary file is
removed and the previous file is unchanged. Reading what users give is :mod:`hpo_core.userfiles`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from hpo_core.errors import HpoError

__all__ = ["atomic_target", "fsync_folder", "partial_file", "write_atomic"]


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises :class:`HpoError` naming the file and the fix when it cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    try:
        partial = partial_file(path.parent, lambda out: out.write(raw), prefix=f".{path.name}.")
        os.replace(partial, path)
    except OSError as exc:
        raise HpoError(
            f"{path}: cannot write ({exc.strerror}); free some space or choose another --out; "
            "the previous file is unchanged"
        ) from None
    fsync_folder(path.parent)
    return path


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` for a library that writes by file name (pandas,
    torch); renamed onto ``path`` when the block ends, removed if it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(partial)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def partial_file(
    folder: Path, write: Callable[[BinaryIO], object], *, prefix: str = ".partial-"
) -> str:
    """A temporary file in ``folder`` holding what ``write`` wrote, on disk; none if it fails."""
    fd, partial = tempfile.mkstemp(prefix=prefix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return partial


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` survive a machine crash, not only a process crash."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

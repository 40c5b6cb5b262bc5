"""The embedded journal file: Optuna's ``JournalFileBackend``, kept readable after a torn write.

Optuna's journal is one JSON record per line, appended under a lock file. A write that stops part
way (a full disk, a file size limit, a crash) leaves a partial last line. Optuna's reader skips it
until another record lands after it; from then on every read fails with a JSON traceback, for
every study in the file. :class:`DurableJournalBackend` keeps the file readable:

- Opening repairs a torn last record (the bytes after the last newline, or a last line that is not
  JSON) under the journal's own lock: the bytes are appended to ``<journal>.torn`` and the journal
  is cut back to its last complete record; one warning says so. Nothing is dropped silently.
- A write that fails is one :class:`StorageError` line; the partial bytes it left are cut off at
  once (the next open would move them aside otherwise), and no record is ever appended after a
  torn one.
- An unreadable record with records after it is not a torn write: it is left alone and every read
  raises one :class:`StorageError` naming the line and byte offset, so the user decides.

The repair looks only at the last line, at open and before a write; reads cost what Optuna's do.

``<journal>.torn`` holds one entry per moved record: a header line
``# torn record of PATH: N bytes from byte offset O, moved ISO-TIME``, then exactly N bytes, then a
newline (see :func:`read_torn_records`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from hpo_core.errors import StorageError

__all__ = ["TORN_SUFFIX", "DurableJournalBackend", "TornRecord", "read_torn_records"]

_log = logging.getLogger(__name__)

TORN_SUFFIX = ".torn"
_CHUNK = 1 << 16
_TORN_HEADER = re.compile(rb"# torn record of .*: (\d+) bytes from byte offset (\d+), moved \S+\n")

# What this module relies on in Optuna 5's JournalFileBackend beyond its public API (checked by
# tests/storage/test_journal.py's contract tests, so an upgrade fails there first):
# - the file format: one ``json.dumps(log, separators=(",", ":"))`` per line, "\n"-terminated,
#   which append_logs below writes itself (Optuna's own write cannot be undone when it fails);
# - read_logs skips a partial last line and raises ValueError (JSONDecodeError, "Invalid log
#   format.", UnicodeDecodeError) for a bad line once another line follows it;
# - JournalFileSymlinkLock(path) is the lock every Optuna process takes on the file by default.


@dataclass(frozen=True)
class TornRecord:
    """The bytes of a torn last record and where they started in the journal."""

    offset: int
    data: bytes


class DurableJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that repairs a torn last record at open, undoes a failed
    write, and names the line of an unreadable record instead of raising a JSON traceback."""

    def __init__(self, file_path: str) -> None:
        self._journal_path = file_path
        self._journal_lock = JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self._journal_lock)
        # Look without the lock first: reading a journal must not need a writable folder.
        if find_torn_tail(file_path) is not None:
            with self._locked("repair its torn last record"):
                _move_torn_tail(file_path)  # it looks again: another process may have done it

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError as exc:  # JSONDecodeError, "Invalid log format.", bad UTF-8
            raise _unreadable(self._journal_path, exc) from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        path = self._journal_path
        with self._locked("write a record"):
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND)
            except OSError as exc:
                raise _write_error(path, exc, "nothing was written") from None
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    _move_torn_tail(path)  # a writer died mid-record since this file was opened
                    size = os.fstat(fd).st_size
                _append(fd, data.encode("utf-8"), size, path)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        try:
            self._journal_lock.acquire()
        except OSError as exc:
            raise StorageError(
                f"journal {self._journal_path}: cannot take its lock file "
                f"{self._journal_path}.lock to {what} ({exc.strerror}); {_advice(exc)}"
            ) from None
        try:
            yield
        finally:
            self._journal_lock.release()


def _append(fd: int, data: bytes, size: int, path: str) -> None:
    """Write ``data`` at the end of the journal open at ``fd`` (``size`` bytes long before), or
    cut the file back to ``size`` and raise: a partial record must not stay in the file."""
    written = 0
    try:
        while written < len(data):
            n = os.write(fd, data[written:])
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += n
    except OSError as exc:
        state = "its partial record is moved aside when the journal is next opened"
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            state = "the journal is as it was before the write"
        raise _write_error(path, exc, state) from None
    try:
        os.fsync(fd)
    except OSError as exc:
        # The whole record is in the file and other processes may have read it: it stays.
        raise _write_error(path, exc, "the record is in the file but may not be on disk") from None


def find_torn_tail(path: str) -> TornRecord | None:
    """The torn last record of the journal at ``path``: the bytes after its last newline, else a
    last line that is not JSON; None when the file ends with a complete record (or is empty)."""
    with open(path, "rb") as journal:
        fd = journal.fileno()
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        if os.pread(fd, 1, size - 1) != b"\n":
            start = _line_start(fd, size)
            return TornRecord(start, os.pread(fd, size - start, start))
        start = _line_start(fd, size - 1)
        line = os.pread(fd, size - start, start)
        try:
            json.loads(line)
        except ValueError:
            return TornRecord(start, line)
        return None


def _line_start(fd: int, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 if there is none)."""
    pos = end
    while pos > 0:
        begin = max(0, pos - _CHUNK)
        found = os.pread(fd, pos - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        pos = begin
    return 0


def _move_torn_tail(path: str) -> None:
    """Append the journal's torn last record to ``<path>.torn``, then cut the journal back to the
    record before it. Call it holding the journal's lock."""
    torn = find_torn_tail(path)
    if torn is None:
        return
    torn_path = path + TORN_SUFFIX
    moved = datetime.now(UTC).isoformat(timespec="seconds")
    header = f"# torn record of {path}: {len(torn.data)} bytes from byte offset {torn.offset}, "
    entry = f"{header}moved {moved}\n".encode() + torn.data + b"\n"
    what = f"a torn last record ({len(torn.data)} bytes at offset {torn.offset})"
    try:
        # Opened first: a journal that cannot be cut back must not leave a copy in the .torn file.
        with open(path, "r+b") as journal:
            _append_durably(Path(torn_path), entry)
            journal.truncate(torn.offset)
            os.fsync(journal.fileno())
    except OSError as exc:
        raise StorageError(
            f"journal {path}: cannot move {what} to {torn_path} ({exc.strerror}); {_advice(exc)}"
        ) from None
    _log.warning("journal %s: moved %s to %s", path, what, torn_path)


def _append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync it (and its folder, for a new file); on failure the
    file is cut back, so an entry is there whole or not at all."""
    created = not path.exists()
    with open(path, "ab") as out:
        size = out.tell()
        try:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                out.truncate(size)
            raise
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def read_torn_records(path: str | Path) -> list[TornRecord]:
    """The entries of a ``.torn`` file, in the order they were moved."""
    content = Path(path).read_bytes()
    records, pos = [], 0
    while pos < len(content):
        header = _TORN_HEADER.match(content, pos)
        if header is None:
            raise StorageError(f"{path}: no torn-record header at byte offset {pos}")
        size, offset = int(header.group(1)), int(header.group(2))
        records.append(TornRecord(offset, content[header.end() : header.end() + size]))
        pos = header.end() + size + 1
    return records


def _unreadable(path: str, exc: ValueError) -> StorageError:
    """One line for a record Optuna cannot read: where it is, and that the user decides."""
    found = _first_unreadable(path)
    if found is None:  # changed since the read failed: say what Optuna said
        return StorageError(f"journal {path}: cannot read it ({exc})")
    number, offset, why = found
    return StorageError(
        f"journal {path}: unreadable record at line {number} (byte offset {offset}): {why}; "
        "records follow it, so it is not a torn write and was left as it is: back up the file, "
        "then delete or fix that line"
    )


def _first_unreadable(path: str) -> tuple[int, int, str] | None:
    """The line number, byte offset and fault of the first line that is not JSON."""
    with open(path, "rb") as journal:
        offset = 0
        for number, line in enumerate(journal, start=1):
            try:
                json.loads(line)
            except ValueError as exc:
                return number, offset, _why(exc)
            offset += len(line)
    return None


def _why(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason})"
    return str(exc)


def _write_error(path: str, exc: OSError, state: str) -> StorageError:
    return StorageError(
        f"journal {path}: cannot write a record ({exc.strerror}); {state}; {_advice(exc)}"
    )


def _advice(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on its disk, then run the command again"
    if exc.errno == errno.EFBIG:
        return "the file size limit is reached (ulimit -f): raise it, then run the command again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the journal and its folder writable, then run the command again"
    return "check its disk, then run the command again"

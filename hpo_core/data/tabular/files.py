"""The feature table on disk: Parquet or CSV by suffix, written atomically, read with one line
naming ``data.path`` when it cannot be."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from hpo_core.errors import DataError
from hpo_core.files import atomic_target

__all__ = ["check_suffix", "load_table", "write_table"]

_SUFFIXES = (".parquet", ".csv")


def check_suffix(path: Path) -> str:
    """The table format by suffix (".parquet" or ".csv"), or a :class:`DataError`."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(
            f"data.path: {path} has suffix {path.suffix or '(none)'!r}; use a .parquet or .csv file"
        )
    return suffix


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` (without its index) as Parquet or CSV by suffix, atomically: readers see
    the old file or the new one, never half of one."""
    target = Path(path)
    suffix = check_suffix(target)
    with atomic_target(target) as partial:
        if suffix == ".parquet":
            frame.to_parquet(partial, engine="pyarrow", index=False)
        else:
            frame.to_csv(partial, index=False)
    return target


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet or CSV table; a missing, unknown or unreadable file is a :class:`DataError`
    naming ``data.path``."""
    source = Path(path)
    suffix = check_suffix(source)
    if not source.is_file():
        raise DataError(f"data.path: {source} does not exist; set the path of a .parquet or .csv")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(source, engine="pyarrow")
        return pd.read_csv(source)
    except Exception as exc:  # pyarrow, pandas and the OS each raise their own types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        kind = "Parquet" if suffix == ".parquet" else "CSV"
        raise DataError(
            f"data.path: cannot read {source} as {kind} ({reason}); rewrite the file"
        ) from None

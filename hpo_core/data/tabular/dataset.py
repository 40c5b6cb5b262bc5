"""A feature table ready to train on: read (cached per process), checked, sorted in time, split,
filled with train medians and standardised with train statistics, computed on the rows up to
the last train sample; and its samples as windows of history, batched as tensors.

Samples are rows that have ``window`` rows of history (their own row included); a sample's
tensor holds those rows and never a later one. torch is imported by the methods that build
tensors only.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from hpo_core.data.tabular import files
from hpo_core.data.tabular.config import (
    TabularConfig,
    _a_few,
    _is_int,
    _is_number,
    _tier_field,
    select_features,
)
from hpo_core.data.tabular.splits import chronological_split
from hpo_core.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["BinaryData", "load_binary_data"]

_CACHE_SIZE = 4


@dataclass(eq=False)
class BinaryData:
    """A standardised table with 0/1 labels, its chronological split and batches of windows."""

    config: TabularConfig
    source: str  # the resolved file path
    columns: list[str]  # every column of the file, in file order
    feature_names: list[str]  # the tier's columns, in file order
    features: np.ndarray  # (n_rows, n_features) float32, NaN filled, standardised; time order
    labels: np.ndarray  # (n_rows,) int64 0/1
    times: np.ndarray  # (n_rows,) sorted, strictly increasing datetime64 or numbers
    train_idx: np.ndarray  # sample rows of each split (int64, increasing)
    val_idx: np.ndarray
    test_idx: np.ndarray
    fill: np.ndarray  # (n_features,) train medians put in place of NaN (raw units)
    mean: np.ndarray  # (n_features,) train mean after filling (raw units)
    std: np.ndarray  # (n_features,) train standard deviation, 1 where it is 0

    n_classes: ClassVar[int] = 2

    @property
    def n_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def window(self) -> int:
        return self.config.window

    def split_idx(self, split: str) -> np.ndarray:
        """Sample rows of "train", "val" or "test"; "all" is every sample row."""
        if split == "all":
            return np.concatenate([self.train_idx, self.val_idx, self.test_idx])
        splits = {"train": self.train_idx, "val": self.val_idx, "test": self.test_idx}
        if split not in splits:
            raise ValueError(f"split: {split!r} is not one of train, val, test, all")
        return splits[split]

    def positive_rate(self, split: str) -> float:
        """Share of positive labels among the split's samples."""
        return float(self.labels[self.split_idx(split)].mean())

    @property
    def pos_weight(self) -> float:
        """Negatives per positive among train samples: ``BCEWithLogitsLoss(pos_weight=...)``."""
        train = self.labels[self.train_idx]
        n_pos = int(train.sum())
        if n_pos == 0:
            raise DataError(
                f"data.label_column: the train split of {self.source} has no positive labels; "
                "use more rows or a later split"
            )
        return (len(train) - n_pos) / n_pos

    def windows(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(len(idx), window, n_features) float32: sample i holds rows idx[i]-window+1 ..
        idx[i], oldest first; never a row after idx[i]."""
        import torch

        rows = torch.as_tensor(idx, dtype=torch.long)
        if len(rows) and (int(rows.min()) < self.window - 1 or int(rows.max()) >= self.n_rows):
            raise ValueError(
                f"idx: sample rows must be in {self.window - 1}..{self.n_rows - 1} "
                f"(window={self.window}), got {int(rows.min())}..{int(rows.max())}"
            )
        offsets = torch.arange(1 - self.window, 1, dtype=torch.long)
        return self._features_tensor[rows[:, None] + offsets[None, :]]

    def train_batches(
        self, batch_size: int, generator: torch.Generator, *, sampling: str = "none"
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of (windows, float32 labels) batches, shuffled with ``generator``.

        ``sampling="balanced"`` draws as many samples as train has, with replacement, half from
        each class on average; ``"none"`` uses every train sample once.
        """
        import torch

        _check_batch_size(batch_size)
        train = torch.from_numpy(self.train_idx)
        if sampling == "none":
            order = train[torch.randperm(len(train), generator=generator)]
        elif sampling == "balanced":
            labels = self._labels_tensor[train]
            n_pos = int(labels.sum())
            if n_pos in (0, len(train)):
                raise DataError(
                    f"data.label_column: the train split of {self.source} has only one class; "
                    "balanced sampling needs both: use more rows or imbalance: weighted"
                )
            weights = torch.where(
                labels > 0.5,
                torch.tensor(0.5 / n_pos, dtype=torch.float64),
                torch.tensor(0.5 / (len(train) - n_pos), dtype=torch.float64),
            )
            draws = torch.multinomial(weights, len(train), replacement=True, generator=generator)
            order = train[draws]
        else:
            raise ValueError(f"sampling: {sampling!r} is not one of none, balanced")
        return [self._batch(chunk) for chunk in torch.split(order, batch_size)]

    def val_batches(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Validation batches in time order (the same every call)."""
        return self._ordered_batches(self.val_idx, batch_size)

    def test_batches(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Test batches in time order (the same every call)."""
        return self._ordered_batches(self.test_idx, batch_size)

    def _ordered_batches(
        self, idx: np.ndarray, batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        _check_batch_size(batch_size)
        return [self._batch(chunk) for chunk in torch.split(torch.from_numpy(idx), batch_size)]

    def _batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows(rows), self._labels_tensor[rows]

    @property
    def _features_tensor(self) -> torch.Tensor:
        return self._tensors[0]

    @property
    def _labels_tensor(self) -> torch.Tensor:
        return self._tensors[1]

    @functools.cached_property
    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The features (sharing memory with ``features``) and float32 labels as tensors."""
        import torch

        return torch.from_numpy(self.features), torch.from_numpy(self.labels.astype(np.float32))


def _check_batch_size(batch_size: int) -> None:
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")


def _missing_column(key: str, name: str, source: Path, columns: Sequence[str]) -> DataError:
    return DataError(f"data.{key}: column {name!r} not in {source}; use one of: {_a_few(columns)}")


def _parse_times(column: pd.Series, name: str, source: Path) -> np.ndarray:
    """The time column as datetime64 (UTC for zoned times) or numbers, in file order."""
    where = f"data.time_column: column {name!r} in {source}"
    if pd.api.types.is_bool_dtype(column):
        raise DataError(f"{where} is boolean; use datetimes or numbers")
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not (pd.api.types.is_datetime64_dtype(column) or pd.api.types.is_numeric_dtype(column)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                column = pd.to_datetime(column, utc=True).dt.tz_localize(None)
        except (ValueError, TypeError, OverflowError):
            examples = ", ".join(repr(v) for v in column.head(2).tolist())
            raise DataError(
                f"{where} cannot be parsed as datetimes (e.g. {examples}); "
                "use ISO 8601 times or numbers"
            ) from None
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{where} has {len(missing)} missing time(s) (first at row {missing[0]}); "
            "fill or drop those rows"
        )
    return np.asarray(column.to_numpy())


def _parse_labels(column: pd.Series, name: str, source: Path) -> np.ndarray:
    where = f"data.label_column: column {name!r} in {source}"
    if pd.api.types.is_bool_dtype(column) and not column.isna().any():
        return np.asarray(column.to_numpy(dtype=np.int64))
    n_missing = int(column.isna().sum())
    if n_missing:
        raise DataError(f"{where} has {n_missing} missing label(s); drop those rows or use 0/1")
    values = column.to_numpy()
    ok = pd.api.types.is_numeric_dtype(column) and bool(np.isin(values, (0, 1)).all())
    if not ok:
        distinct = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values)]
        others = [v for v in distinct if not (_is_number(v) and v in (0, 1))]
        examples = ", ".join(repr(v) for v in others[:3])
        raise DataError(f"{where} has values other than 0 and 1 (e.g. {examples}); use 0/1 labels")
    return np.asarray(values, dtype=np.int64)


def _feature_matrix(frame: pd.DataFrame, names: list[str], config: TabularConfig) -> np.ndarray:
    where = _tier_field(config)
    for name in names:
        if not (
            pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name])
        ):
            raise DataError(
                f"{where}: column {name!r} of {config.path} is not numeric "
                f"(dtype {frame[name].dtype}); drop it from the tier"
            )
    values = np.asarray(frame[names].to_numpy(dtype=np.float64, na_value=np.nan))
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        bad = [n for n, flag in zip(names, infinite, strict=True) if flag]
        raise DataError(
            f"{where}: column(s) {', '.join(bad[:3])} of {config.path} hold infinite values; "
            "replace them with NaN or finite numbers"
        )
    return values


def _build(config: TabularConfig, frame: pd.DataFrame, source: Path) -> BinaryData:
    frame = frame.rename(columns=str)  # a new frame: the cached one stays as read
    columns = frame.columns.tolist()
    for key, name in (("label_column", config.label_column), ("time_column", config.time_column)):
        if name not in frame.columns:
            raise _missing_column(key, name, source, columns)
    names = select_features(columns, config)
    times = _parse_times(frame[config.time_column], config.time_column, source)
    order = np.argsort(times, kind="stable")
    times = times[order]
    repeated = np.flatnonzero(times[1:] == times[:-1])
    if len(repeated):
        raise DataError(
            f"data.time_column: column {config.time_column!r} in {source} has "
            f"{len(repeated)} repeated time(s) (first {times[repeated[0]]}); keep one row per time"
        )
    if config.max_rows is not None:
        order, times = order[: config.max_rows], times[: config.max_rows]
    labels = _parse_labels(frame[config.label_column], config.label_column, source)[order]
    raw = _feature_matrix(frame, names, config)[order]
    train, val, test = chronological_split(
        len(order),
        window=config.window,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        gap=config.gap,
    )
    # statistics from the rows train samples can see: history up to the last train sample
    seen = raw[: train[-1] + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        fill = np.nanmedian(seen, axis=0)
    fill = np.where(np.isnan(fill), 0.0, fill)
    raw = np.where(np.isnan(raw), fill, raw)
    seen = raw[: train[-1] + 1]
    mean, std = seen.mean(axis=0), seen.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    features = np.ascontiguousarray((raw - mean) / std, dtype=np.float32)
    return BinaryData(
        config=config,
        source=str(source),
        columns=columns,
        feature_names=names,
        features=features,
        labels=labels,
        times=times,
        train_idx=train,
        val_idx=val,
        test_idx=test,
        fill=fill,
        mean=mean,
        std=std,
    )


_cache: dict[tuple[Any, ...], BinaryData] = {}
_tables: dict[tuple[Any, ...], pd.DataFrame] = {}
_cache_lock = threading.Lock()


def _remember(cache: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    with _cache_lock:
        cache[key] = value
        while len(cache) > _CACHE_SIZE:
            del cache[next(iter(cache))]


def load_binary_data(config: TabularConfig) -> BinaryData:
    """Read, check, split and standardise the table a config names.

    Cached per process by (file, inode, modification time, size, config) for the last few
    configs, so a worker's trials share one load and a rewritten file is read again; the file as
    read is cached by the same file key alone, so trials that sample ``window`` or ``tier`` skip
    the read.
    """
    source = Path(config.path).expanduser().resolve()
    files.check_suffix(source)
    try:
        stat = source.stat()
    except OSError:
        raise DataError(
            f"data.path: {source} does not exist; set the path of a .parquet or .csv"
        ) from None
    file_key = (str(source), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    key = (*file_key, config)
    with _cache_lock:
        hit, frame = _cache.get(key), _tables.get(file_key)
    if hit is not None:
        return hit
    if frame is None:
        frame = files.load_table(source)
        _remember(_tables, file_key, frame)
    data = _build(config, frame, source)
    _remember(_cache, key, data)
    return data

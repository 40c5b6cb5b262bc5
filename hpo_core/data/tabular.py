"""Tabular time series for a binary classifier of rare events: files, feature tiers, leak-free
chronological splits and windows of history as tensors.

A table is one row per time step: a time column, feature columns and a 0/1 label. Samples are rows
that have ``window`` rows of history (their own row included); a sample's tensor holds those rows
and never a later one. Splits are chronological (train, then val, then test) with ``gap`` rows of
embargo between them, so a label computed from forward returns cannot reach across a split (set
``gap`` to at least the label's horizon). Missing features are filled with train medians and every
feature is standardised with train statistics, computed on the rows up to the last train sample.

Only numpy and pandas are imported here; torch is imported by the methods that build tensors.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import numbers
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from hpo_core.errors import DataError
from hpo_core.files import atomic_target

if TYPE_CHECKING:
    import torch

__all__ = [
    "LABEL_HORIZON",
    "BinaryData",
    "TabularConfig",
    "check_table",
    "chronological_split",
    "generate_binary_dataset",
    "load_binary_data",
    "load_table",
    "select_features",
    "write_table",
]

LABEL_HORIZON = 12  # rows ahead that generate_binary_dataset's label looks; a safe ``gap``
_SUFFIXES = (".parquet", ".csv")
_BASE_FEATURES = ("ret_1", "ret_5", "ret_20", "vol_20", "volume_z")
_WARMUP = 20  # rows simulated before the first output row so rolling features are complete
_CACHE_SIZE = 4


# --------------------------------------------------------------------------- synthetic data


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance. A plain loop: 20,000 steps take about 2 ms,
    while importing scipy.signal for ``lfilter`` takes about a second."""
    shocks = (rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)).tolist()
    level = float(rng.standard_normal())
    series = []
    for shock in shocks:
        level = phi * level + shock
        series.append(level)
    return np.array(series, dtype=np.float64)


def _rolling(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each trailing window of ``width`` values (own value
    included); the first ``width - 1`` entries are NaN."""
    view = np.lib.stride_tricks.sliding_window_view(values, width)
    pad = np.full(width - 1, np.nan)
    return np.concatenate([pad, view.mean(axis=1)]), np.concatenate([pad, view.std(axis=1)])


def generate_binary_dataset(
    n_rows: int = 20000,
    *,
    n_base: int = 5,
    n_alpha: int = 100,
    n_informative: int = 30,
    positive_rate: float = 0.07,
    n_regimes: int = 3,
    seed: int = 0,
    with_regime: bool = False,
) -> pd.DataFrame:
    """A synthetic hourly series of rare "buy" opportunities, deterministic for a seed.

    A price follows a Markov chain over ``n_regimes`` regimes (each with its own volatility and
    drift, about 400 rows per stay) plus a latent AR(1) factor that drives the next returns.
    ``label`` is 1 when the log return over the next :data:`LABEL_HORIZON` rows is above the
    ``1 - positive_rate`` quantile, so regimes with more drift or volatility have more positives.
    The last rows are not lost to the forward window: the series is simulated that many rows
    further and those extra rows are dropped, so all ``n_rows`` rows carry a real label.

    Columns: ``time`` (hourly from 2020-01-01), base features ``ret_1, ret_5, ret_20, vol_20,
    volume_z`` (the first ``n_base``; computed from the price), ``alpha_001 ..`` (``n_alpha``):
    the first ``n_informative`` are noisy, partly stale (lag 0-2) readings of the latent factor;
    the rest of ``alpha_001 .. alpha_050`` are noise sharing a common nuisance factor; from
    ``alpha_051`` on, noise with a weak signal whose sign drifts over time (it helps early and
    misleads later, so a 55-feature tier tends to beat the 105-feature one a little). Then the
    latent ``regime`` (0 .. n_regimes-1, only when ``with_regime``; never train on it) and
    ``label`` (int64 0/1).
    """
    if n_rows < 2:
        raise ValueError(f"n_rows: must be at least 2, got {n_rows}")
    if not 0 <= n_base <= len(_BASE_FEATURES):
        raise ValueError(f"n_base: must be in 0..{len(_BASE_FEATURES)}, got {n_base}")
    if n_alpha < 0 or not 0 <= n_informative <= min(50, n_alpha):
        raise ValueError(
            f"n_informative: must be in 0..min(50, n_alpha), got {n_informative} "
            f"(n_alpha={n_alpha})"
        )
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate: must be in (0, 1), got {positive_rate}")
    if n_regimes < 1:
        raise ValueError(f"n_regimes: must be at least 1, got {n_regimes}")
    rng = np.random.default_rng(seed)
    horizon = LABEL_HORIZON
    total = _WARMUP + n_rows + horizon
    out = slice(_WARMUP, _WARMUP + n_rows)

    # regimes: a sticky Markov chain; a switch moves to one of the other regimes at random
    if n_regimes > 1:
        switches = rng.random(total) < 1.0 / 400.0
        steps = np.where(switches, rng.integers(1, n_regimes, total), 0)
        regime = (int(rng.integers(n_regimes)) + np.cumsum(steps)) % n_regimes
        order = rng.permutation(n_regimes)
        vol = np.geomspace(0.85, 1.2, n_regimes)[order]
        drift = np.linspace(-0.04, 0.04, n_regimes)[order]
    else:
        regime = np.zeros(total, dtype=np.int64)
        vol, drift = np.ones(1), np.zeros(1)

    # returns: regime drift and volatility, the latent factor of the previous row, fat-tailed noise
    latent = _ar1(rng, total, 0.97)
    noise = rng.standard_t(5, total) / math.sqrt(5.0 / 3.0)
    scale = 0.004 * vol[regime]
    previous = np.concatenate([[0.0], latent[:-1]])
    ret = scale * (drift[regime] + 0.25 * previous + noise)
    log_price = np.cumsum(ret)
    forward = log_price[_WARMUP + horizon :] - log_price[_WARMUP : _WARMUP + n_rows]
    label = (forward > np.quantile(forward, 1.0 - positive_rate)).astype(np.int64)

    columns: dict[str, Any] = {
        "time": pd.date_range("2020-01-01", periods=n_rows, freq="h"),
    }
    log_volume = 0.6 * np.log(np.abs(noise) + 0.1) + 2.0 * np.log(vol[regime])
    log_volume += 0.5 * _ar1(rng, total, 0.9)
    volume_mean, volume_std = _rolling(log_volume, 20)
    base = {
        "ret_1": ret,
        "ret_5": log_price - np.concatenate([np.zeros(5), log_price[:-5]]),
        "ret_20": log_price - np.concatenate([np.zeros(20), log_price[:-20]]),
        "vol_20": _rolling(ret, 20)[1],
        "volume_z": (log_volume - volume_mean) / volume_std,
    }
    for name in _BASE_FEATURES[:n_base]:
        columns[name] = base[name][out]

    nuisance = _ar1(rng, n_rows, 0.9)
    alpha = rng.standard_normal((n_rows, n_alpha)) + 0.5 * nuisance[:, None]
    loading = rng.uniform(0.15, 0.45, n_informative) * rng.choice([-1.0, 1.0], n_informative)
    lags = rng.integers(0, 3, n_informative)
    for j in range(n_informative):
        start = _WARMUP - int(lags[j])
        alpha[:, j] += loading[j] * latent[start : start + n_rows]
    n_drifting = max(0, n_alpha - 50)
    if n_drifting:
        clock = np.linspace(0.0, 1.0, n_rows)[:, None]
        weak = rng.uniform(0.05, 0.15, n_drifting) * rng.choice([-1.0, 1.0], n_drifting)
        period = rng.uniform(1.0, 2.0, n_drifting)
        alpha[:, 50:] += weak * np.cos(np.pi * clock * period) * latent[out, None]
    # features on their own scales and offsets, as real ones come
    alpha = alpha * rng.lognormal(0.0, 1.0, n_alpha) + rng.normal(0.0, 2.0, n_alpha)
    for j in range(n_alpha):
        columns[f"alpha_{j + 1:03d}"] = alpha[:, j]
    if with_regime:
        columns["regime"] = regime[out].astype(np.int64)
    columns["label"] = label
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- files


def _check_suffix(path: Path) -> str:
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
    suffix = _check_suffix(target)
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
    suffix = _check_suffix(source)
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


# --------------------------------------------------------------------------- settings


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _normalise_tiers(value: object) -> dict[str, list[str]] | None:
    """``tiers`` as a fresh dict of lists, or None when it does not have that shape (a single
    string per tier is read as a one-entry list)."""
    if not isinstance(value, Mapping):
        return None
    tiers: dict[str, list[str]] = {}
    for name, entries in value.items():
        listed = [entries] if isinstance(entries, str) else entries
        if not isinstance(listed, Sequence) or not all(isinstance(e, str) for e in listed):
            return None
        tiers[str(name)] = list(listed)
    return tiers


@dataclass(frozen=True)
class TabularConfig:
    """Which table a sweep trains on, which features, and how samples and splits are cut."""

    path: str  # the .parquet or .csv file
    label_column: str = "label"  # 0/1 (or bool) target
    time_column: str = "time"  # datetime or number; rows are sorted by it, no duplicates
    tiers: dict[str, list[str]] = field(default_factory=dict)  # name -> columns or fnmatch globs
    tier: str | None = None  # which tier; None: every column but label and time
    window: int = 16  # rows of history per sample, its own row included
    val_fraction: float = 0.15  # share of samples in val (after train, in time)
    test_fraction: float = 0.15  # share of samples in test (last)
    gap: int = 0  # embargo rows dropped between splits; at least the label's horizon
    max_rows: int | None = None  # keep the first N rows in time order (tests, demos)

    _KEYS: ClassVar[tuple[str, ...]] = (
        "label_column",
        "time_column",
        "tiers",
        "tier",
        "window",
        "val_fraction",
        "test_fraction",
        "gap",
        "max_rows",
    )

    def __post_init__(self) -> None:
        tiers = _normalise_tiers(self.tiers)
        if tiers is not None:
            object.__setattr__(self, "tiers", tiers)  # a private copy: the config stays frozen
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        found = self._check(values, "path", {key: "data" for key in values})
        if found:
            raise DataError(f"{found[0][0]}: {found[0][1]}")

    def __hash__(self) -> int:
        # by value, like the generated one would be, with the tiers dict as sorted tuples
        tiers = tuple((name, tuple(entries)) for name, entries in sorted(self.tiers.items()))
        return hash(
            tuple(tiers if f.name == "tiers" else getattr(self, f.name) for f in fields(self))
        )

    @classmethod
    def problems(
        cls, params: Mapping[str, Any], where: Mapping[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """Every invalid setting as (path, message), without reading the file; the path names
        the spec section a key came from (``where`` maps keys to "data"; the rest are "fixed")."""
        path_key = "data_path" if "data_path" in params or "path" not in params else "path"
        values = {key: params[key] for key in cls._KEYS if key in params}
        if path_key in params:
            values["path"] = params[path_key]
        return cls._check(values, path_key, where or {})

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], where: Mapping[str, str] | None = None
    ) -> TabularConfig:
        """The validated settings from trial params and data settings (``data_path`` or
        ``path``; unknown keys ignored), or a :class:`DataError` naming the first bad one."""
        found = cls.problems(params, where)
        if found:
            raise DataError(f"{found[0][0]}: {found[0][1]}")
        path = params["data_path"] if "data_path" in params else params["path"]
        kwargs: dict[str, Any] = {key: params[key] for key in cls._KEYS if key in params}
        kwargs["path"] = str(path)
        for key in ("window", "gap"):
            if key in kwargs:
                kwargs[key] = int(kwargs[key])
        for key in ("val_fraction", "test_fraction"):
            if key in kwargs:
                kwargs[key] = float(kwargs[key])
        if kwargs.get("max_rows") is not None:
            kwargs["max_rows"] = int(kwargs["max_rows"])
        return cls(**kwargs)

    @staticmethod
    def _check(
        values: Mapping[str, Any], path_key: str, where: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        def at(key: str) -> str:
            return f"{where.get(key, 'fixed')}.{key}"

        found: list[tuple[str, str]] = []
        path = values.get("path")
        if not isinstance(path, str | os.PathLike) or not str(path):
            found.append(
                (at(path_key), f"required, got {path!r}; set the .parquet or .csv file to use")
            )
        for key in ("label_column", "time_column"):
            value = values.get(key, "x")
            if not isinstance(value, str) or not value:
                found.append((at(key), f"must be a column name, got {value!r}"))
        label, time = values.get("label_column", "label"), values.get("time_column", "time")
        if label == time:
            found.append(
                (at("time_column"), f"is the label column too ({time!r}); name the time column")
            )
        raw_tiers = values.get("tiers", {})
        tiers = _normalise_tiers(raw_tiers)
        if tiers is None:
            found.append(
                (at("tiers"), f"must map tier names to lists of columns, got {raw_tiers!r}")
            )
        else:
            for name, entries in tiers.items():
                if not entries or not all(entries):
                    found.append(
                        (
                            f"{at('tiers')}.{name}",
                            f"needs column names or patterns, got {entries!r}",
                        )
                    )
        tier = values.get("tier")
        if tier is not None:
            if not isinstance(tier, str):
                found.append((at("tier"), f"must be a tier name or null, got {tier!r}"))
            elif tiers is not None and tier not in tiers:
                choices = ", ".join(tiers) if tiers else "none defined; add data.tiers"
                found.append((at("tier"), f"{tier!r} is not a tier; use one of: {choices}"))
        window = values.get("window", 16)
        if not _is_int(window) or window < 1:
            found.append((at("window"), f"`window >= 1` must hold, but got (window={window!r})"))
        fractions_ok = True
        for key in ("val_fraction", "test_fraction"):
            value = values.get(key, 0.15)
            if not _is_number(value) or not 0.0 < value < 1.0:
                fractions_ok = False
                found.append((at(key), f"`0 < {key} < 1` must hold, but got ({key}={value!r})"))
        if fractions_ok:
            val, test = values.get("val_fraction", 0.15), values.get("test_fraction", 0.15)
            if val + test >= 0.9:
                found.append(
                    (
                        at("test_fraction"),
                        "`val_fraction + test_fraction < 0.9` must hold, but got "
                        f"(val_fraction={val}, test_fraction={test}); leave 10% or more to train",
                    )
                )
        gap = values.get("gap", 0)
        if not _is_int(gap) or gap < 0:
            found.append((at("gap"), f"`gap >= 0` must hold, but got (gap={gap!r})"))
        max_rows = values.get("max_rows")
        if max_rows is not None and (not _is_int(max_rows) or max_rows < 1):
            found.append(
                (at("max_rows"), f"must be a positive number of rows or null, got {max_rows!r}")
            )
        return found


def _tier_field(config: TabularConfig) -> str:
    return f"data.tiers.{config.tier}" if config.tier is not None else "data.tier"


def _a_few(columns: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


def select_features(columns: Sequence[str], config: TabularConfig) -> list[str]:
    """The configured tier's feature columns in file order: exact names and fnmatch patterns
    (a pattern never picks the label or time column; naming one of them is an error)."""
    reserved = {config.label_column, config.time_column}
    candidates = [c for c in columns if c not in reserved]
    if config.tier is None:
        if not candidates:
            raise DataError(
                f"data.tier: {config.path} has no columns besides "
                f"{config.label_column!r} and {config.time_column!r}; add feature columns"
            )
        return candidates
    where = _tier_field(config)
    if config.tier not in config.tiers:
        raise DataError(
            f"data.tier: {config.tier!r} is not a tier; use one of: {_a_few(list(config.tiers))}"
        )
    chosen: set[str] = set()
    for entry in config.tiers[config.tier]:
        if entry in reserved:
            raise DataError(
                f"{where}: {entry!r} is the label or time column; remove it from the tier"
            )
        if entry in candidates:
            chosen.add(entry)
            continue
        matched = [c for c in candidates if fnmatch.fnmatchcase(c, entry)]
        if not matched:
            what = (
                f"pattern {entry!r} matches no column of"
                if any(ch in entry for ch in "*?[")
                else f"column {entry!r} not in"
            )
            raise DataError(f"{where}: {what} {config.path}; use one of: {_a_few(candidates)}")
        chosen.update(matched)
    return [c for c in candidates if c in chosen]


# --------------------------------------------------------------------------- splits


def chronological_split(
    n_rows: int, *, window: int, val_fraction: float, test_fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions (in time order) of the train, val and test samples, in that order.

    The first ``window - 1`` rows are history only; ``gap`` rows between train and val and
    between val and test are no sample's rows (they still appear in later samples' history).
    Fractions are of the samples left after that.
    """
    if window < 1 or gap < 0:
        raise DataError(
            f"data.window: `window >= 1` and `gap >= 0` must hold, got ({window=}, {gap=})"
        )
    usable = n_rows - (window - 1) - 2 * gap
    n_val = round(usable * val_fraction)
    n_test = round(usable * test_fraction)
    n_train = usable - n_val - n_test
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, size in sizes.items():
        if size < 1:
            raise DataError(
                f"data.path: {n_rows} rows leave the {name} split empty (window={window}, "
                f"gap={gap}, val_fraction={val_fraction}, test_fraction={test_fraction}); "
                "use more rows (max_rows) or a smaller window, gap or fraction"
            )
    first = window - 1
    train = np.arange(first, first + n_train, dtype=np.int64)
    val = np.arange(train[-1] + 1 + gap, train[-1] + 1 + gap + n_val, dtype=np.int64)
    test = np.arange(val[-1] + 1 + gap, n_rows, dtype=np.int64)
    return train, val, test


# --------------------------------------------------------------------------- loading


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
    _check_suffix(source)
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
        frame = load_table(source)
        _remember(_tables, file_key, frame)
    data = _build(config, frame, source)
    _remember(_cache, key, data)
    return data


# --------------------------------------------------------------------------- pre-launch check


def check_table(config: TabularConfig) -> tuple[str, str, dict[str, Any]]:
    """Load the table and check every tier, for a pre-launch check.

    Returns ("pass", summary, details); ("fail", reason, details) when the train or validation
    split has no positives (no trial could learn or be scored); ("warn", reason, details) when the
    test split has none, or a split has more than half; anything unusable raises
    :class:`DataError`.
    """
    data = load_binary_data(config)
    tier_sizes: dict[str, int] = {}
    for name in config.tiers:
        other = TabularConfig(**{**_config_kwargs(config), "tier": name})
        tier_sizes[name] = len(select_features(data.columns, other))
    splits = ("train", "val", "test")
    rates = {split: data.positive_rate(split) for split in splits}
    overall = float(data.labels.mean())
    if config.tier is None:
        features = f"{data.n_features} features (every column but label and time)"
    else:
        others = [f"{n} in {name}" for name, n in tier_sizes.items() if name != config.tier]
        features = f"{data.n_features} features in tier {config.tier}" + (
            f" ({', '.join(others)})" if others else ""
        )
    per_split = ", ".join(f"{split} {rates[split]:.1%}" for split in splits)
    summary = (
        f"{data.n_rows} rows from {data.source}, {features}, {overall:.1%} positive ({per_split})"
    )
    details: dict[str, Any] = {
        "path": data.source,
        "rows": data.n_rows,
        "tier": config.tier,
        "n_features": data.n_features,
        "tier_sizes": tier_sizes,
        "positive_rate": {"all": overall, **rates},
        "samples": {split: len(data.split_idx(split)) for split in splits},
        "time_range": [str(data.times[0]), str(data.times[-1])],
        "summary": summary,
    }
    odd = [split for split in splits if rates[split] == 0.0 or rates[split] > 0.5]
    if odd:
        split = odd[0]
        n_pos = int(data.labels[data.split_idx(split)].sum())
        n = len(data.split_idx(split))
        what = "no positive labels" if n_pos == 0 else f"{rates[split]:.1%} positive labels"
        # without positives in train or validation no trial can learn or be scored: refuse
        fatal = n_pos == 0 and split in ("train", "val")
        return (
            "fail" if fatal else "warn",
            f"the {split} split of {data.source} has {what} ({n_pos} of {n} samples); "
            "check data.label_column or move the split (val_fraction, test_fraction, max_rows)",
            details,
        )
    return "pass", summary, details


def _config_kwargs(config: TabularConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}

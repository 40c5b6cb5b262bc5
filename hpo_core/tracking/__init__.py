"""Tracking in MLflow: parent run per sweep, child run per trial (imports mlflow lazily)."""

from __future__ import annotations

from hpo_core.tracking.mlflow_store import (
    ATTR_EXPERIMENT,
    ATTR_PARENT_RUN,
    ATTR_TRACKING_URI,
    ENV_TRACKING,
    Tracker,
    default_artifact_root,
    fluent_tracking,
    init_tracking,
    resolve_tracking_uri,
)

__all__ = [
    "ATTR_EXPERIMENT",
    "ATTR_PARENT_RUN",
    "ATTR_TRACKING_URI",
    "ENV_TRACKING",
    "Tracker",
    "default_artifact_root",
    "fluent_tracking",
    "init_tracking",
    "resolve_tracking_uri",
]

"""Training: one loop for trials and champions (importing this package imports torch)."""

from __future__ import annotations

from hpo_core.training.loop import (
    BinaryTask,
    EpochMetrics,
    Evaluation,
    MulticlassTask,
    Task,
    TrainConfig,
    TrainData,
    TrainResult,
    configure_threads,
    evaluate,
    resolve_device,
    train_model,
)

__all__ = [
    "BinaryTask",
    "EpochMetrics",
    "Evaluation",
    "MulticlassTask",
    "Task",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "configure_threads",
    "evaluate",
    "resolve_device",
    "train_model",
]

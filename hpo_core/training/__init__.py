"""Training: one loop for trials and champions (importing this package imports torch)."""

from __future__ import annotations

from hpo_core.training.loop import (
    CHECKPOINT_FORMAT,
    BinaryTask,
    Checkpointing,
    EpochMetrics,
    Evaluation,
    MulticlassTask,
    Task,
    TrainConfig,
    TrainData,
    TrainResult,
    capture_rng_state,
    configure_threads,
    evaluate,
    resolve_device,
    restore_rng_state,
    train_model,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "BinaryTask",
    "Checkpointing",
    "EpochMetrics",
    "Evaluation",
    "MulticlassTask",
    "Task",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "capture_rng_state",
    "configure_threads",
    "evaluate",
    "resolve_device",
    "restore_rng_state",
    "train_model",
]

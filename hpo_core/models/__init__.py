"""Models the sweeps tune; one file per family (importing this package imports torch)."""

from __future__ import annotations

from hpo_core.models.classifier import (
    ArcModelConfig,
    TaskClassifier,
    build_task_classifier,
    count_parameters,
)
from hpo_core.models.cnn import CNNConfig, TaskEncoderCNN
from hpo_core.models.context import ContextConfig, ContextEncoder
from hpo_core.models.head import HeadConfig, PrototypeHead

__all__ = [
    "ArcModelConfig",
    "CNNConfig",
    "ContextConfig",
    "ContextEncoder",
    "HeadConfig",
    "PrototypeHead",
    "TaskClassifier",
    "TaskEncoderCNN",
    "build_task_classifier",
    "count_parameters",
]

"""TaskClassifier: an encoder (CNN or context) and a prototype head, built from trial parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hpo_core.data.dataset import ArcBatch
from hpo_core.models.cnn import CNNConfig, TaskEncoderCNN
from hpo_core.models.context import ContextConfig, ContextEncoder
from hpo_core.models.head import HeadConfig, PrototypeHead

__all__ = ["ArcModelConfig", "TaskClassifier", "build_task_classifier", "count_parameters"]


@dataclass(frozen=True)
class ArcModelConfig:
    encoder_type: Literal["cnn", "context"]  # which encoder family
    encoder: CNNConfig | ContextConfig  # that family's settings
    head: HeadConfig  # prototype head settings

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, n_classes: int, max_demos: int
    ) -> ArcModelConfig:
        """Pick each part's settings out of a trial's flat parameters (unknown keys ignored,
        missing ones take the dataclass defaults)."""
        encoder_type = params.get("encoder_type", "cnn")
        family: type[CNNConfig] | type[ContextConfig]
        if encoder_type == "cnn":
            family = CNNConfig
        elif encoder_type == "context":
            family = ContextConfig
        else:
            raise ValueError(f"encoder_type must be 'cnn' or 'context', but got {encoder_type!r}")
        encoder = _pick(family, params, max_demos=max_demos)
        head = _pick(HeadConfig, params, n_classes=n_classes)
        if not params.get("use_cosine", True) and "temperature" not in params:
            head = dataclasses.replace(head, temperature=1.0)
        return cls(encoder_type, encoder, head)


def _pick(kind: type[Any], params: Mapping[str, Any], **forced: Any) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in params.items() if k in names and k not in forced}, **forced)


class TaskClassifier(nn.Module):
    def __init__(self, config: ArcModelConfig, centroids: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder: nn.Module = (
            TaskEncoderCNN(config.encoder)
            if isinstance(config.encoder, CNNConfig)
            else ContextEncoder(config.encoder)
        )
        self.head = PrototypeHead(config.head, centroids)

    def forward(self, batch: ArcBatch | torch.Tensor) -> torch.Tensor:
        """Class logits, (B, n_classes), from a batch or its packed tensor (``ArcBatch.pack``)."""
        if isinstance(batch, torch.Tensor):
            batch = ArcBatch.unpack(batch)
        return self.head(self.encoder(batch))


def build_task_classifier(
    params: Mapping[str, Any],
    *,
    n_classes: int,
    max_demos: int,
    centroids: np.ndarray | None = None,
) -> TaskClassifier:
    config = ArcModelConfig.from_params(params, n_classes=n_classes, max_demos=max_demos)
    return TaskClassifier(config, centroids)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (fixed centroids are buffers, so they do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

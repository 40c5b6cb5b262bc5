"""Prototype head: logits from the similarity of the task embedding to one vector per class.

The class vectors are learned prototypes, or the user's fixed centroids (then the embedding goes
through a linear projection when its size differs from the centroids'). The similarity is a cosine
scaled by a temperature (``use_cosine``) or a plain dot product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeadConfig", "PrototypeHead"]


@dataclass(frozen=True)
class HeadConfig:
    embed_dim: int = 128  # size of the embedding the encoder produces
    n_classes: int = 9  # number of prototypes
    use_cosine: bool = True  # cosine similarity x temperature, else dot product
    temperature: float = 10.0  # logit scale of the cosine similarity

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, but got temperature={self.temperature}")


class PrototypeHead(nn.Module):
    prototypes: torch.Tensor

    def __init__(self, config: HeadConfig, centroids: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        if centroids is not None:
            if centroids.shape[0] != config.n_classes:
                raise ValueError(
                    f"centroids need one row per class, but got {centroids.shape[0]} rows "
                    f"for n_classes={config.n_classes}"
                )
            self.register_buffer("prototypes", torch.as_tensor(centroids, dtype=torch.float32))
            dim = centroids.shape[1]
            self.proj: nn.Module = (
                nn.Identity() if dim == config.embed_dim else nn.Linear(config.embed_dim, dim)
            )
        else:
            self.prototypes = nn.Parameter(
                torch.randn(config.n_classes, config.embed_dim) * config.embed_dim**-0.5
            )
            self.proj = nn.Identity()

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        z = self.proj(embedding)
        if self.config.use_cosine:
            return (
                self.config.temperature
                * F.normalize(z, dim=-1)
                @ F.normalize(self.prototypes, dim=-1).T
            )
        return z @ self.prototypes.T

"""TaskEncoderCNN: a convolutional encoder of an ARC task's demonstration pairs.

Each pair is read as one image: the input and the output grid one-hot encoded and stacked as
channels on a common canvas (top-left aligned), plus their in-grid masks and, optionally, two
coordinate channels. A stack of conv blocks (downsampling 30 -> 15 -> 8, channels doubling at
blocks 1 and 3) and a masked pooling give one vector per pair. The pairs are then aggregated
(``flatten``: concatenated in slot order, or ``mean``: averaged over the real pairs) and an MLP
maps the result to the task embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hpo_core.data.arc import N_COLOURS
from hpo_core.data.dataset import ArcBatch

__all__ = ["CNNConfig", "TaskEncoderCNN"]


@dataclass(frozen=True)
class CNNConfig:
    depth: int = 3  # conv blocks; blocks 1 and 2 halve the resolution (30 -> 15 -> 8)
    width_mult: float = 1.0  # channels of the first block = round(32 * width_mult)
    embed_dim: int = 128  # size of the task embedding the head reads
    mlp_hidden: int = 512  # hidden units of the MLP after pair aggregation
    demo_agg: Literal["flatten", "mean"] = "mean"  # how pair vectors become one task vector
    use_coords: bool = False  # add normalised row/column channels (CoordConv)
    max_demos: int = 4  # pair slots per sample; `flatten` needs it to size its MLP

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, but got depth={self.depth}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, but got width_mult={self.width_mult}")


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(self.conv(x)))


class TaskEncoderCNN(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        c_in = 2 * (N_COLOURS + 1) + (2 if config.use_coords else 0)
        base = max(8, round(32 * config.width_mult))
        blocks, c = [], c_in
        for i in range(config.depth):
            downsample = i in (1, 2)
            c_out = base * (2 if i >= 1 else 1) * (2 if i >= 3 else 1)
            blocks.append(ConvBlock(c, c_out, stride=2 if downsample else 1))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pair_dim = 2 * c  # masked mean and max
        agg_in = self.pair_dim * (config.max_demos if config.demo_agg == "flatten" else 1)
        self.mlp = nn.Sequential(
            nn.Linear(agg_in, config.mlp_hidden),
            nn.GELU(),
            nn.Linear(config.mlp_hidden, config.embed_dim),
        )

    def forward(self, batch: ArcBatch) -> torch.Tensor:
        b, p, _, h, w = batch.grids.shape
        onehot = F.one_hot(batch.grids, N_COLOURS).to(torch.float32)  # (B, P, 2, H, W, 10)
        mask = batch.cell_mask.unsqueeze(-1).to(torch.float32)
        x = torch.cat([onehot * mask, mask], dim=-1)  # (B, P, 2, H, W, 11)
        x = x.permute(0, 1, 2, 5, 3, 4).reshape(b * p, 2 * (N_COLOURS + 1), h, w)
        if self.config.use_coords:
            rows = torch.linspace(-1, 1, 30, device=x.device)[:h]
            cols = torch.linspace(-1, 1, 30, device=x.device)[:w]
            coords = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
            x = torch.cat([x, coords.expand(b * p, -1, -1, -1)], dim=1)
        feats = self.blocks(x)  # (B*P, C, h', w')
        area = batch.cell_mask.any(dim=2).reshape(b * p, 1, h, w).to(torch.float32)
        area = F.adaptive_max_pool2d(area, feats.shape[-2:])
        mean = (feats * area).sum((2, 3)) / area.sum((2, 3)).clamp(min=1)
        peak = feats.masked_fill(area == 0, float("-inf")).amax((2, 3))
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        pairs = torch.cat([mean, peak], dim=1).reshape(b, p, self.pair_dim)
        pair_mask = batch.pair_mask.unsqueeze(-1).to(pairs.dtype)
        pairs = pairs * pair_mask
        if self.config.demo_agg == "flatten":
            agg = pairs.reshape(b, p * self.pair_dim)
        else:
            agg = pairs.sum(1) / pair_mask.sum(1).clamp(min=1)
        return self.mlp(agg)

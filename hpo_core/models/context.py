"""Context encoder: a transformer over the pixels of each grid, then one over the grids of a task.

Pixel level: each grid is cut into ``patch x patch`` cells (the "pixels" the attention sees; 3 by
default, so a 30x30 grid is 100 tokens), embedded with a learned 2-D position and a role embedding
(input or output), and read by ``ctx_pixel_layers`` transformer layers; its CLS token is the grid
vector. Grid level: the grid vectors of all demonstration pairs, with role and pair-slot
embeddings, go through ``ctx_grid_layers`` more layers; that CLS token, projected to ``embed_dim``,
is the task embedding. Padding patches and padding pairs are masked out of attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hpo_core.data.arc import MAX_GRID, N_COLOURS
from hpo_core.data.dataset import ArcBatch

__all__ = ["ContextConfig", "ContextEncoder"]


@dataclass(frozen=True)
class ContextConfig:
    ctx_d_model: int = 128  # token width of both transformers
    ctx_n_head: int = 4  # attention heads; must divide ctx_d_model
    ctx_pixel_layers: int = 2  # layers over the patches of one grid
    ctx_grid_layers: int = 1  # layers over the grids of a task
    ctx_dropout: float = 0.1  # dropout inside both transformers
    ctx_patch: int = 3  # side of a patch token in cells
    embed_dim: int = 128  # size of the task embedding the head reads
    max_demos: int = 4  # pair slots per sample

    def __post_init__(self) -> None:
        if self.ctx_d_model % self.ctx_n_head:
            raise ValueError(
                "ctx_d_model % ctx_n_head == 0 must hold, but got "
                f"(ctx_d_model={self.ctx_d_model}, ctx_n_head={self.ctx_n_head})"
            )
        if self.ctx_patch < 1 or MAX_GRID % self.ctx_patch:
            raise ValueError(f"ctx_patch must divide 30, but got ctx_patch={self.ctx_patch}")


def _encoder(config: ContextConfig, n_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.ctx_d_model,
        config.ctx_n_head,
        dim_feedforward=4 * config.ctx_d_model,
        dropout=config.ctx_dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


class ContextEncoder(nn.Module):
    def __init__(self, config: ContextConfig) -> None:
        super().__init__()
        self.config = config
        d, patch = config.ctx_d_model, config.ctx_patch
        side = MAX_GRID // patch
        self.patch_embed = nn.Linear((N_COLOURS + 1) * patch * patch, d)
        self.pos = nn.Parameter(torch.randn(side, side, d) * 0.02)
        self.role = nn.Parameter(torch.randn(2, d) * 0.02)  # input grid, output grid
        self.slot = nn.Parameter(torch.randn(config.max_demos, d) * 0.02)
        self.grid_cls = nn.Parameter(torch.randn(d) * 0.02)
        self.task_cls = nn.Parameter(torch.randn(d) * 0.02)
        self.pixel_encoder = _encoder(config, config.ctx_pixel_layers)
        self.grid_encoder = _encoder(config, config.ctx_grid_layers)
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, config.embed_dim)

    def forward(self, batch: ArcBatch) -> torch.Tensor:
        cfg = self.config
        b, p, _, h, w = batch.grids.shape
        patch, d = cfg.ctx_patch, cfg.ctx_d_model
        ph, pw = -(-h // patch), -(-w // patch)
        grids = F.pad(batch.grids, (0, pw * patch - w, 0, ph * patch - h))
        mask = F.pad(batch.cell_mask, (0, pw * patch - w, 0, ph * patch - h))
        x = F.one_hot(grids, N_COLOURS).to(torch.float32) * mask.unsqueeze(-1)
        x = torch.cat([x, mask.unsqueeze(-1).to(torch.float32)], dim=-1)  # (B,P,2,H,W,11)
        x = x.reshape(b * p * 2, ph, patch, pw, patch, N_COLOURS + 1)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b * p * 2, ph * pw, -1)
        tokens = self.patch_embed(x) + self.pos[:ph, :pw].reshape(1, ph * pw, d)
        tokens = tokens + self.role.repeat(b * p, 1)[:, None, :]
        patch_real = (
            mask.reshape(b * p * 2, ph, patch, pw, patch).any(4).any(2).reshape(b * p * 2, ph * pw)
        )
        cls = self.grid_cls.expand(b * p * 2, 1, d)
        pad = torch.cat([torch.zeros_like(patch_real[:, :1]), ~patch_real], dim=1)
        grid_vec = self.pixel_encoder(torch.cat([cls, tokens], dim=1), src_key_padding_mask=pad)
        grid_vec = grid_vec[:, 0].reshape(b, p, 2, d)
        grid_vec = grid_vec + self.role[None, None] + self.slot[None, :p, None]
        grid_tokens = grid_vec.reshape(b, p * 2, d)
        pair_pad = (~batch.pair_mask).repeat_interleave(2, dim=1)
        cls = self.task_cls.expand(b, 1, d)
        pad = torch.cat([torch.zeros_like(pair_pad[:, :1]), pair_pad], dim=1)
        out = self.grid_encoder(torch.cat([cls, grid_tokens], dim=1), src_key_padding_mask=pad)
        return self.proj(self.norm(out[:, 0]))

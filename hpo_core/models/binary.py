"""Binary classifiers over a window of past rows of a feature table, for imbalanced labels.

A sample is the ``window`` most recent rows of the table, oldest first and the present row last:
a float tensor (B, window, n_features). Both models return one logit per sample, (B,), for
``BCEWithLogitsLoss`` (its ``pos_weight`` is the place for the class imbalance).

- ``TransformerClassifier``: each row is projected to ``d_model`` and given a learned position;
  a pre-norm encoder lets every row attend to the whole window (which holds only past rows, so
  nothing leaks), and the head reads the last token, the present row.
- ``MLPClassifier``: the window flattened, a stack of equal-width GELU layers, a linear head.

Sizes can be given as a parameter budget (``budget: 2M`` in a trial's parameters): the configs,
exact counts and sizing live in the torch-free ``hpo_core.models.budget``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hpo_core.models.budget import (
    MLPConfig,
    TransformerConfig,
    parse_budget,
    size_mlp,
    size_transformer,
)

__all__ = ["MLPClassifier", "TransformerClassifier", "build_binary_model"]

# Trial-parameter defaults of build_binary_model (without a budget, ff_dim defaults to 4 * d_model).
DEFAULT_D_MODEL = 128
DEFAULT_N_LAYERS = 2
DEFAULT_N_HEADS = 4
DEFAULT_DROPOUT = 0.1
DEFAULT_HIDDEN = 256


def _check_input(x: torch.Tensor, window: int, n_features: int) -> None:
    if x.dim() != 3 or x.shape[1:] != (window, n_features):
        raise ValueError(
            f"x must have shape (batch, window={window}, n_features={n_features}), "
            f"but got {tuple(x.shape)}"
        )


class TransformerClassifier(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.n_features, config.d_model)
        self.pos = nn.Parameter(torch.randn(config.window, config.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.n_heads,
            config.ff_dim,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # nested tensors only speed up padded batches, and pre-norm layers cannot use them (warns)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)  # pre-norm layers leave the residual un-normed
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B,) from rows (B, window, n_features), oldest first."""
        _check_input(x, self.config.window, self.config.n_features)
        h = self.encoder(self.embed(x) + self.pos)
        return self.head(self.norm(h[:, -1])).squeeze(-1)


class MLPClassifier(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.window * config.n_features
        for _ in range(config.n_layers):
            layers += [nn.Linear(width, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B,) from rows (B, window, n_features)."""
        _check_input(x, self.config.window, self.config.n_features)
        return self.head(self.body(x.flatten(1))).squeeze(-1)


def build_binary_model(
    params: Mapping[str, Any], *, n_features: int, window: int
) -> tuple[nn.Module, dict[str, Any]]:
    """A binary classifier from a trial's flat parameters, and what was built.

    ``model`` picks the family ("transformer", the default, or "mlp"). With ``budget`` (e.g.
    "2M" or 2000000) the free width (ff_dim or hidden) is sized to it, and giving that width
    too is an error; without one it is taken from ``ff_dim`` (default 4 * d_model) or
    ``hidden`` (default 256). Other keys are ignored. The info holds ``model``, ``budget``,
    ``n_params`` (counted on the built model), the width, and ``budget_ratio`` (n_params /
    budget, or None).
    """
    family = params.get("model", "transformer")
    if family not in ("transformer", "mlp"):
        raise ValueError(f"model must be 'transformer' or 'mlp', but got {family!r}")
    width_name = "ff_dim" if family == "transformer" else "hidden"
    raw_budget = params.get("budget")
    budget = None if raw_budget is None else parse_budget(raw_budget)
    if budget is not None and params.get(width_name) is not None:
        raise ValueError(
            f"give either budget or {width_name} for a {family}, not both: the budget sizes "
            f"{width_name} (got budget={raw_budget!r}, {width_name}={params[width_name]!r})"
        )
    n_layers = int(params.get("n_layers", DEFAULT_N_LAYERS))
    dropout = float(params.get("dropout", DEFAULT_DROPOUT))

    model: nn.Module
    if family == "transformer":
        d_model = int(params.get("d_model", DEFAULT_D_MODEL))
        n_heads = int(params.get("n_heads", DEFAULT_N_HEADS))
        if budget is None:
            ff_dim = int(params.get("ff_dim", 4 * d_model))
            tcfg = TransformerConfig(
                n_features, window, d_model, n_layers, n_heads, dropout, ff_dim
            )
        else:
            tcfg = size_transformer(
                budget,
                n_features=n_features,
                window=window,
                d_model=d_model,
                n_layers=n_layers,
                n_heads=n_heads,
                dropout=dropout,
            )
        model, width = TransformerClassifier(tcfg), tcfg.ff_dim
    else:
        if budget is None:
            hidden = int(params.get("hidden", DEFAULT_HIDDEN))
            mcfg = MLPConfig(n_features, window, hidden, n_layers, dropout)
        else:
            mcfg = size_mlp(
                budget, n_features=n_features, window=window, n_layers=n_layers, dropout=dropout
            )
        model, width = MLPClassifier(mcfg), mcfg.hidden

    n_params = sum(p.numel() for p in model.parameters())
    info: dict[str, Any] = {
        "model": family,
        "budget": budget,
        "n_params": n_params,
        width_name: width,
        "budget_ratio": None if budget is None else n_params / budget,
    }
    return model, info

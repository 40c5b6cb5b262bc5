"""Parameter budgets for the binary classifiers: configs, exact counts and sizing, without torch.

A sweep can fix a model's size as a parameter budget ("2M", "20M") rather than as widths, so
that trials of different depths compare at equal capacity. The counts here are closed forms of
what ``hpo_core.models.binary`` builds (tests hold them equal to the built models), in integer
arithmetic, so a spec can be checked against its budget where torch is not installed. Sizing
fixes the shape (d_model, n_layers; or n_layers) and solves for the one free width (ff_dim;
or hidden) whose count is closest to the budget; a budget that cannot be met within 10% is an
error that names the shape and the fix.

Importing this module does not import torch (the ``hpo_core.models`` package ``__init__`` does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "BUDGET_TOLERANCE",
    "BudgetError",
    "MLPConfig",
    "TransformerConfig",
    "format_count",
    "mlp_budget_problem",
    "mlp_param_count",
    "parse_budget",
    "size_mlp",
    "size_transformer",
    "transformer_budget_problem",
    "transformer_param_count",
]

# A sized model's count must lie within this fraction of its budget.
BUDGET_TOLERANCE = 0.10
_TOLERANCE_DIVISOR = 10  # 1 / BUDGET_TOLERANCE, so the check stays in integers

_BUDGET_RE = re.compile(r"(\d+(?:\.\d+)?)([kKmM]?)")
_SUFFIX_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


class BudgetError(ValueError):
    """A parameter budget that the requested model shape cannot meet within 10%."""


def parse_budget(value: str | int | float) -> int:
    """A parameter count from ``2M``, ``1.5M``, ``500k``/``500K``, ``123456`` or a whole number."""
    error = ValueError(
        f"budget: cannot read {value!r} as a parameter count; use e.g. 2M, 20M, 500k or an integer"
    )
    if isinstance(value, bool):
        raise error
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value) or value < 1:
            raise error
        return int(value)
    if not isinstance(value, str):
        raise error
    match = _BUDGET_RE.fullmatch(value.strip())
    if match is None:
        raise error
    number, suffix = match.groups()
    try:
        count = Decimal(number) * _SUFFIX_SCALE[suffix.lower()]
    except InvalidOperation:
        raise error from None
    if count != count.to_integral_value() or count < 1:
        raise error
    return int(count)


def format_count(n: int) -> str:
    """``n`` as a short count for messages: 2000000 -> "2M", 8412345 -> "8.41M", 500 -> "500"."""
    for suffix, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale:
            value = n / scale
            return f"{round(value)}{suffix}" if value >= 1_000 else f"{value:.3g}{suffix}"
    return str(n)


def _require_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} >= 1 must hold, but got ({name}={value})")


def _require_dropout(dropout: float) -> None:
    if not 0 <= dropout < 1:
        raise ValueError(f"0 <= dropout < 1 must hold, but got (dropout={dropout})")


@dataclass(frozen=True)
class TransformerConfig:
    n_features: int  # columns of the feature table: the width of one input row
    window: int  # rows per sample, oldest first; the last one is the present row the head reads
    d_model: int  # token width of the encoder
    n_layers: int  # encoder layers
    n_heads: int  # attention heads; must divide d_model
    dropout: float  # dropout inside the encoder layers
    ff_dim: int  # hidden width of each layer's feed-forward block; the width a budget sizes

    def __post_init__(self) -> None:
        _require_positive(
            n_features=self.n_features,
            window=self.window,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ff_dim=self.ff_dim,
        )
        if self.d_model % self.n_heads:
            raise ValueError(
                "d_model % n_heads == 0 must hold, but got "
                f"(d_model={self.d_model}, n_heads={self.n_heads})"
            )
        _require_dropout(self.dropout)


@dataclass(frozen=True)
class MLPConfig:
    n_features: int  # columns of the feature table: the width of one input row
    window: int  # rows per sample; the MLP reads them flattened, window * n_features inputs
    hidden: int  # width of every hidden layer; the width a budget sizes
    n_layers: int  # hidden layers (Linear -> GELU -> Dropout), at least one
    dropout: float  # dropout after each hidden layer

    def __post_init__(self) -> None:
        _require_positive(
            n_features=self.n_features,
            window=self.window,
            hidden=self.hidden,
            n_layers=self.n_layers,
        )
        _require_dropout(self.dropout)


# Counts. Transformer, with d = d_model and f = ff_dim:
#   input projection  n_features*d + d
#   positions         window*d
#   per layer         attention 4d^2 + 4d (in_proj 3d^2 + 3d, out_proj d^2 + d),
#                     feed-forward 2*d*f + f + d, two LayerNorms 4d
#   final LayerNorm   2d;  head d + 1
# MLP, with h = hidden and n_in = window*n_features:
#   (n_in*h + h) + (n_layers - 1)*(h^2 + h) + (h + 1)


def _transformer_count(n_features: int, window: int, d_model: int, n_layers: int, ff: int) -> int:
    d = d_model
    per_layer = 4 * d * d + 9 * d + ff * (2 * d + 1)
    return (n_features + 1 + window + 3) * d + n_layers * per_layer + 1


def _mlp_count(n_in: int, n_layers: int, hidden: int) -> int:
    return (n_layers - 1) * hidden * hidden + (n_in + n_layers + 1) * hidden + 1


def transformer_param_count(cfg: TransformerConfig) -> int:
    """Parameters of ``TransformerClassifier(cfg)``, without building it."""
    return _transformer_count(cfg.n_features, cfg.window, cfg.d_model, cfg.n_layers, cfg.ff_dim)


def mlp_param_count(cfg: MLPConfig) -> int:
    """Parameters of ``MLPClassifier(cfg)``, without building it."""
    return _mlp_count(cfg.window * cfg.n_features, cfg.n_layers, cfg.hidden)


def _within(count: int, budget: int) -> bool:
    return _TOLERANCE_DIVISOR * abs(count - budget) <= budget


def _closest(budget: int, candidates: list[tuple[int, int]]) -> tuple[int, int]:
    """The (width, count) pair whose count is closest to ``budget``; the narrower on a tie."""
    return min(candidates, key=lambda wc: (abs(wc[1] - budget), wc[0]))


def _problem(budget: int, shape: str, width_name: str, width: int, count: int, fix: str) -> str:
    if width == 1 and count > budget:
        reached = f"at least {format_count(count)} parameters with {width_name}=1"
    else:
        reached = f"the closest is {format_count(count)} parameters with {width_name}={width}"
    return (
        f"budget {format_count(budget)} cannot be met within {BUDGET_TOLERANCE:.0%} by {shape} "
        f"({reached}); {fix}, or raise the budget"
    )


def _size_ff(
    budget: int, n_features: int, window: int, d_model: int, n_layers: int
) -> tuple[int, int, str | None]:
    """The ff_dim closest to ``budget``, its count, and the problem if it is not close enough."""
    _require_positive(
        budget=budget, n_features=n_features, window=window, d_model=d_model, n_layers=n_layers
    )
    base = _transformer_count(n_features, window, d_model, n_layers, 0)
    per_ff = n_layers * (2 * d_model + 1)
    ff = max(1, (budget - base) // per_ff)
    candidates = [(f, base + f * per_ff) for f in (ff, ff + 1)]
    ff, count = _closest(budget, candidates)
    if _within(count, budget):
        return ff, count, None
    shape = f"a transformer with d_model={d_model}, n_layers={n_layers}"
    return ff, count, _problem(budget, shape, "ff_dim", ff, count, "lower d_model or n_layers")


def _size_hidden(
    budget: int, n_features: int, window: int, n_layers: int
) -> tuple[int, int, str | None]:
    """The hidden width closest to ``budget``, its count, and the problem if not close enough."""
    _require_positive(budget=budget, n_features=n_features, window=window, n_layers=n_layers)
    n_in = window * n_features
    # count(h) = a*h^2 + b*h + 1; take the integer root of count(h) = budget, then its neighbours
    a, b, c = n_layers - 1, n_in + n_layers + 1, 1 - budget
    if a == 0:
        root = max(0, -c // b)
    else:
        root = max(0, (-b + math.isqrt(max(0, b * b - 4 * a * c))) // (2 * a))
    widths = range(max(1, root - 1), root + 3)
    hidden, count = _closest(budget, [(h, _mlp_count(n_in, n_layers, h)) for h in widths])
    if _within(count, budget):
        return hidden, count, None
    shape = f"an MLP with n_layers={n_layers} over window={window} x n_features={n_features}"
    return (
        hidden,
        count,
        _problem(budget, shape, "hidden", hidden, count, "lower window or n_layers"),
    )


def transformer_budget_problem(
    budget: int, *, n_features: int, window: int, d_model: int, n_layers: int
) -> str | None:
    """Why no ff_dim brings this transformer within 10% of ``budget``, or None if one does."""
    return _size_ff(budget, n_features, window, d_model, n_layers)[2]


def mlp_budget_problem(budget: int, *, n_features: int, window: int, n_layers: int) -> str | None:
    """Why no hidden width brings this MLP within 10% of ``budget``, or None if one does."""
    return _size_hidden(budget, n_features, window, n_layers)[2]


def size_transformer(
    budget: int,
    *,
    n_features: int,
    window: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    dropout: float,
) -> TransformerConfig:
    """The config of this shape whose ff_dim brings its count closest to ``budget``.

    Raises BudgetError when even the closest count is more than 10% away (typically: the
    attention weights alone, 4 * d_model^2 per layer, exceed the budget).
    """
    ff_dim, _, problem = _size_ff(budget, n_features, window, d_model, n_layers)
    if problem is not None:
        raise BudgetError(problem)
    return TransformerConfig(n_features, window, d_model, n_layers, n_heads, dropout, ff_dim)


def size_mlp(
    budget: int, *, n_features: int, window: int, n_layers: int, dropout: float
) -> MLPConfig:
    """The config of this shape whose hidden width brings its count closest to ``budget``.

    Raises BudgetError when even the closest count is more than 10% away (typically: the first
    layer at hidden=1 already has window * n_features weights more than the budget).
    """
    hidden, _, problem = _size_hidden(budget, n_features, window, n_layers)
    if problem is not None:
        raise BudgetError(problem)
    return MLPConfig(n_features, window, hidden, n_layers, dropout)

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from hpo_core.models import (
    BudgetError,
    MLPClassifier,
    MLPConfig,
    TransformerClassifier,
    TransformerConfig,
    build_binary_model,
    mlp_param_count,
    parse_budget,
    size_mlp,
    size_transformer,
    transformer_budget_problem,
    transformer_param_count,
)
from hpo_core.models.budget import format_count, mlp_budget_problem

BUDGETS = [2_000_000, 20_000_000, 200_000_000]


def numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_count(model_cls: type[nn.Module], cfg: object) -> int:
    """Parameters of the built model, on the meta device: no memory, no init time."""
    with torch.device("meta"):
        return numel(model_cls(cfg))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2M", 2_000_000),
        ("20M", 20_000_000),
        ("200M", 200_000_000),
        ("500k", 500_000),
        ("500K", 500_000),
        ("1.5M", 1_500_000),
        (" 2m ", 2_000_000),
        ("123456", 123_456),
        (123_456, 123_456),
        (2e6, 2_000_000),
    ],
)
def test_parse_budget(value: str | int | float, expected: int) -> None:
    assert parse_budget(value) == expected


@pytest.mark.parametrize(
    "value", ["abc", "", "2G", "M", "-5", "0", "1.5", "2 M M", "1e6", 0, -3, 2.5, True]
)
def test_parse_budget_rejects(value: str | int | float) -> None:
    with pytest.raises(
        ValueError, match=r"as a parameter count; use e\.g\. 2M, 20M, 500k or an integer"
    ):
        parse_budget(value)


def test_parse_budget_message() -> None:
    with pytest.raises(ValueError) as info:
        parse_budget("abc")
    assert str(info.value) == (
        "budget: cannot read 'abc' as a parameter count; use e.g. 2M, 20M, 500k or an integer"
    )


@pytest.mark.parametrize(
    ("n", "text"), [(2_000_000, "2M"), (8_412_345, "8.41M"), (500_000, "500k"), (999, "999")]
)
def test_format_count(n: int, text: str) -> None:
    assert format_count(n) == text


def test_config_invariants() -> None:
    with pytest.raises(ValueError) as info:
        TransformerConfig(55, 16, 100, 2, 3, 0.1, 400)
    assert str(info.value) == "d_model % n_heads == 0 must hold, but got (d_model=100, n_heads=3)"
    with pytest.raises(ValueError, match=r"n_layers >= 1 must hold, but got \(n_layers=0\)"):
        TransformerConfig(55, 16, 64, 0, 4, 0.1, 256)
    with pytest.raises(ValueError, match=r"0 <= dropout < 1 must hold, but got \(dropout=1.0\)"):
        TransformerConfig(55, 16, 64, 2, 4, 1.0, 256)
    with pytest.raises(ValueError, match=r"ff_dim >= 1 must hold"):
        TransformerConfig(55, 16, 64, 2, 4, 0.1, 0)
    with pytest.raises(ValueError, match=r"n_layers >= 1 must hold"):
        MLPConfig(55, 16, 64, 0, 0.1)
    with pytest.raises(ValueError, match=r"hidden >= 1 must hold"):
        MLPConfig(55, 16, 0, 2, 0.1)
    with pytest.raises(ValueError, match=r"0 <= dropout < 1 must hold"):
        MLPConfig(55, 16, 64, 2, -0.1)


@pytest.mark.parametrize(
    "cfg",
    [
        TransformerConfig(1, 1, 1, 1, 1, 0.0, 1),
        TransformerConfig(55, 16, 64, 2, 4, 0.1, 256),
        TransformerConfig(105, 32, 128, 6, 8, 0.0, 77),
        TransformerConfig(7, 3, 96, 3, 3, 0.2, 1000),
    ],
)
def test_transformer_count_is_exact(cfg: TransformerConfig) -> None:
    assert transformer_param_count(cfg) == numel(TransformerClassifier(cfg))


@pytest.mark.parametrize(
    "cfg",
    [
        MLPConfig(1, 1, 1, 1, 0.0),
        MLPConfig(55, 16, 256, 2, 0.1),
        MLPConfig(105, 32, 17, 4, 0.0),
        MLPConfig(7, 3, 300, 1, 0.5),
    ],
)
def test_mlp_count_is_exact(cfg: MLPConfig) -> None:
    assert mlp_param_count(cfg) == numel(MLPClassifier(cfg))


@pytest.mark.parametrize(
    ("budget", "n_features", "window", "d_model", "n_layers"),
    list(itertools.product(BUDGETS, [55, 105], [16, 32], [64, 128, 256], [2, 6])),
)
def test_size_transformer_meets_budget(
    budget: int, n_features: int, window: int, d_model: int, n_layers: int
) -> None:
    cfg = size_transformer(
        budget,
        n_features=n_features,
        window=window,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=4,
        dropout=0.1,
    )
    count = meta_count(TransformerClassifier, cfg)
    assert count == transformer_param_count(cfg)
    assert abs(count - budget) <= 0.001 * budget
    # closest: one step of ff_dim either way is no nearer
    for ff_dim in (cfg.ff_dim - 1, cfg.ff_dim + 1):
        if ff_dim >= 1:
            other = TransformerConfig(n_features, window, d_model, n_layers, 4, 0.1, ff_dim)
            assert abs(transformer_param_count(other) - budget) >= abs(count - budget)


@pytest.mark.parametrize(
    ("budget", "n_features", "window", "n_layers"),
    list(itertools.product(BUDGETS, [55, 105], [16, 32], [2, 4])),
)
def test_size_mlp_meets_budget(budget: int, n_features: int, window: int, n_layers: int) -> None:
    cfg = size_mlp(budget, n_features=n_features, window=window, n_layers=n_layers, dropout=0.1)
    count = meta_count(MLPClassifier, cfg)
    assert count == mlp_param_count(cfg)
    # one step of hidden moves the count by about 2*(n_layers-1)*hidden + window*n_features,
    # up to 0.3% of a 2M budget; what matters is that no other width is nearer
    assert abs(count - budget) <= 0.01 * budget
    for hidden in (cfg.hidden - 1, cfg.hidden + 1):
        other = MLPConfig(n_features, window, hidden, n_layers, 0.1)
        assert abs(mlp_param_count(other) - budget) >= abs(count - budget)


def test_size_mlp_single_layer() -> None:
    cfg = size_mlp(20_000, n_features=10, window=4, n_layers=1, dropout=0.0)
    assert cfg.hidden == 476  # 42 * 476 + 1 = 19993
    assert mlp_param_count(cfg) == 19_993


def test_infeasible_transformer_budget() -> None:
    with pytest.raises(BudgetError) as info:
        size_transformer(
            2_000_000, n_features=55, window=16, d_model=512, n_layers=8, n_heads=8, dropout=0.1
        )
    assert str(info.value) == (
        "budget 2M cannot be met within 10% by a transformer with d_model=512, n_layers=8 "
        "(at least 8.47M parameters with ff_dim=1); lower d_model or n_layers, or raise the budget"
    )
    assert isinstance(info.value, ValueError)


def test_infeasible_mlp_budget() -> None:
    with pytest.raises(BudgetError, match=r"n_layers=2 .*\(at least .* with hidden=1\)"):
        size_mlp(1_000, n_features=105, window=32, n_layers=2, dropout=0.1)
    # too coarse rather than too small: hidden=1 and hidden=2 are both over 10% away
    problem = mlp_budget_problem(1_500, n_features=100, window=10, n_layers=1)
    assert problem is not None
    assert "the closest is" in problem


@pytest.mark.parametrize(
    ("budget", "d_model", "n_layers"),
    list(
        itertools.product(
            [50_000, 200_000, 500_000, 2_000_000, 8_000_000], [64, 256, 512], [1, 2, 8]
        )
    ),
)
def test_budget_problem_agrees_with_sizing(budget: int, d_model: int, n_layers: int) -> None:
    shape = {"n_features": 55, "window": 16, "d_model": d_model, "n_layers": n_layers}
    problem = transformer_budget_problem(budget, **shape)
    if problem is None:
        size_transformer(budget, **shape, n_heads=4, dropout=0.1)
    else:
        with pytest.raises(BudgetError) as info:
            size_transformer(budget, **shape, n_heads=4, dropout=0.1)
        assert str(info.value) == problem
        assert f"d_model={d_model}, n_layers={n_layers}" in problem


@pytest.mark.parametrize("family", ["transformer", "mlp"])
def test_small_model_trains(family: str) -> None:
    torch.manual_seed(0)
    model, info = build_binary_model(
        {"model": family, "budget": "20k", "d_model": 16, "n_heads": 2, "n_layers": 2},
        n_features=7,
        window=8,
    )
    assert info["n_params"] == numel(model)
    assert info["budget"] == 20_000
    assert abs(info["budget_ratio"] - 1) <= 0.1
    x = torch.randn(5, 8, 7)
    logits = model(x)
    assert logits.shape == (5,)
    loss = nn.BCEWithLogitsLoss()(logits, torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match=r"x must have shape \(batch, window=8, n_features=7\)"):
        model(torch.randn(5, 9, 7))


def test_build_without_budget_uses_defaults() -> None:
    with torch.device("meta"):
        model, info = build_binary_model({}, n_features=55, window=16)
        mlp, mlp_info = build_binary_model({"model": "mlp"}, n_features=55, window=16)
    assert isinstance(model, TransformerClassifier)
    assert model.config == TransformerConfig(55, 16, 128, 2, 4, 0.1, 512)
    assert info == {
        "model": "transformer",
        "budget": None,
        "n_params": transformer_param_count(model.config),
        "ff_dim": 512,
        "budget_ratio": None,
    }
    assert isinstance(mlp, MLPClassifier)
    assert mlp.config == MLPConfig(55, 16, 256, 2, 0.1)
    assert mlp_info["hidden"] == 256
    assert mlp_info["n_params"] == mlp_param_count(mlp.config)


def test_build_rejects_bad_params() -> None:
    with pytest.raises(ValueError, match="model must be 'transformer' or 'mlp', but got 'cnn'"):
        build_binary_model({"model": "cnn"}, n_features=5, window=4)
    with pytest.raises(ValueError, match="give either budget or ff_dim for a transformer"):
        build_binary_model({"budget": "2M", "ff_dim": 64}, n_features=5, window=4)
    with pytest.raises(BudgetError, match="d_model=512, n_layers=8"):
        build_binary_model({"budget": "2M", "d_model": 512, "n_layers": 8}, n_features=5, window=4)
    with pytest.raises(ValueError, match="cannot read 'lots'"):
        build_binary_model({"budget": "lots"}, n_features=5, window=4)

"""(i) The binary_classifier family: what a trial costs on top of training, and training itself.

- Metrics on 1,000,000 validation scores (5% positives): binary_metrics (AUC, average precision,
  precision/recall at the threshold and the top 1/5/10%, the score range), the exact threshold
  table, and the same table from the stored 100-bin histogram (what `hpo thresholds` reads).
- Budget sizing: the largest |n_params / budget - 1| over budgets 2M/20M/200M, d_model 64-256,
  n_layers 2-8, windows 16/32 and 55/105 features (counted in closed form; the tests check the
  count against built models).
- Training on the CPU: the demo's table (8,000 rows, window 8, 105 features), 2 epochs, per model
  at the demo's budgets: seconds per epoch and training samples per second.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _best_of(fn: Any, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def metric_times(n: int = 1_000_000) -> dict[str, Any]:
    from hpo_core.metrics import (
        binary_metrics,
        score_histogram,
        threshold_table,
        threshold_table_from_histogram,
    )

    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.05).astype(np.int64)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 2.0)))
    hist = score_histogram(y, s)
    return {
        "n": n,
        "binary_metrics_s": round(_best_of(lambda: binary_metrics(y, s)), 3),
        "threshold_table_s": round(_best_of(lambda: threshold_table(y, s)), 3),
        "histogram_s": round(_best_of(lambda: score_histogram(y, s)), 3),
        "table_from_histogram_ms": round(
            1000 * _best_of(lambda: threshold_table_from_histogram(hist)), 3
        ),
    }


def budget_errors() -> dict[str, Any]:
    from hpo_core.models import size_mlp, size_transformer, transformer_param_count
    from hpo_core.models.budget import mlp_param_count

    worst_t = worst_m = 0.0
    combos = 0
    for budget, d, layers, window, features in itertools.product(
        (2_000_000, 20_000_000, 200_000_000), (64, 128, 256), (2, 4, 8), (16, 32), (55, 105)
    ):
        try:
            cfg = size_transformer(
                budget,
                n_features=features,
                window=window,
                d_model=d,
                n_layers=layers,
                n_heads=4,
                dropout=0.1,
            )
        except ValueError:
            continue  # infeasible (e.g. d_model 256 x 8 layers over 2M): validate refuses it
        combos += 1
        worst_t = max(worst_t, abs(transformer_param_count(cfg) / budget - 1))
        mlp = size_mlp(budget, n_features=features, window=window, n_layers=2, dropout=0.1)
        worst_m = max(worst_m, abs(mlp_param_count(mlp) / budget - 1))
    return {
        "combinations": combos,
        "transformer_max_error_pct": round(100 * worst_t, 4),
        "mlp_max_error_pct": round(100 * worst_m, 4),
    }


def training_times() -> list[dict[str, Any]]:
    import torch

    from hpo_core.data import (
        TabularConfig,
        generate_binary_dataset,
        load_binary_data,
        write_table,
    )
    from hpo_core.models import build_binary_model
    from hpo_core.training import BinaryTask, TrainConfig, train_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "buy.parquet"
        write_table(generate_binary_dataset(8000, seed=0), path)
        data = load_binary_data(TabularConfig(path=str(path), window=8, gap=12))
        for family, budget in itertools.product(("transformer", "mlp"), ("20k", "100k", "2M")):
            params = {"model": family, "budget": budget, "d_model": 32, "n_heads": 2}
            torch.manual_seed(0)
            model, info = build_binary_model(params, n_features=data.n_features, window=8)
            config = TrainConfig(epochs=2, batch_size=256, lr=1e-3)
            result = train_model(model, data, config, task=BinaryTask(data.pos_weight))
            rows.append(
                {
                    "model": family,
                    "budget": budget,
                    "n_params": info["n_params"],
                    "seconds_per_epoch": round(result.train_seconds / result.epochs_trained, 2),
                    "samples_per_second": round(result.samples_per_second),
                    "val_auc": round(result.best_score, 4),
                }
            )
    return rows


def binary_bench() -> dict[str, Any]:
    return {"metrics": metric_times(), "budgets": budget_errors(), "training": training_times()}


def render(results: dict[str, Any]) -> list[str]:
    b = results.get("binary")
    if not b:
        return []
    m, g = b["metrics"], b["budgets"]
    lines = [
        "## (i) binary_classifier: metrics, budget sizing, training",
        "",
        f"Metrics on {m['n']:,} scores: binary_metrics {m['binary_metrics_s']} s, exact threshold "
        f"table {m['threshold_table_s']} s, histogram {m['histogram_s']} s, threshold table from "
        f"the histogram {m['table_from_histogram_ms']} ms.",
        "",
        f"Budget sizing over {g['combinations']} feasible combinations: transformer within "
        f"{g['transformer_max_error_pct']}% of the budget, MLP within {g['mlp_max_error_pct']}%.",
        "",
        "| model | budget | parameters | s / epoch | samples / s | val AUC (2 epochs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['model']} | {r['budget']} | {r['n_params']:,} | {r['seconds_per_epoch']} | "
        f"{r['samples_per_second']:,} | {r['val_auc']} |"
        for r in b["training"]
    ]
    return [*lines, ""]

"""An objective with the trial attributes real objectives set (constants of the data, per-trial
measures, a copy of the score), for the tracking tests: ``tests.tracking.objectives:reporting``."""

from __future__ import annotations

import optuna

from hpo_core.objectives import TrialContext


def reporting(ctx: TrialContext) -> float:
    """Three epochs of ``x * epoch / 2``; pruned after epoch 1 when ``x < 0.3`` and failed when
    ``x > 0.85``, so that one sweep has every state."""
    x = float(ctx.params["x"])
    ctx.set_attr("n_classes", 4)  # constants of the data: params (a known name)
    ctx.set_constant("chance_level", 0.25)
    ctx.set_constant("n_tasks", 12)  # marked by the objective
    ctx.set_attr("train_seconds", 0.5 + x)  # a per-trial measure: a metric
    ctx.set_attr("device", "cpu")  # not a number: not logged
    for epoch in range(3):
        ctx.report(x * epoch / 2, epoch)
        if epoch == 1 and x < 0.3:
            raise optuna.TrialPruned(f"x={x:.3f} is below 0.3")
    if x > 0.85:
        raise RuntimeError(f"x={x:.3f} is above 0.85")
    ctx.set_attr("best_val_acc", x)  # arc_classifier's copy of the score: not a second column
    return x

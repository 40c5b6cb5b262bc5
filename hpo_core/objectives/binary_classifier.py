"""The ``binary_classifier`` objective: a rare-event classifier on a time-ordered feature table.

Seed 004's sweep family: "buy" opportunities at 5-10% positives, judged by precision first and
recall second, AUC for ranking only, never F1 or accuracy. The spec's ``data:`` section names the
table (Parquet or CSV), its label and time columns and the feature tiers; a ``tier`` parameter
picks one. Splits are chronological (train, then validation, then test). The model is a
transformer encoder over a window of past rows or an MLP baseline, sized to a parameter ``budget``
(2M / 20M / 200M) through its feed-forward (or hidden) width; the trial records the real count.

Class imbalance is the spec's choice (``imbalance``): ``weighted`` (positives weighted by
negatives/positives in the loss, the default), ``sampling`` (class-balanced batches) or ``none``.
The trial returns the validation figure named by ``metric`` (``metrics.optimize``, e.g. ``auc``)
at the best epoch and records every figure of :func:`hpo_core.metrics.binary_metrics` (precision
and recall at the spec's threshold and at the top-k% of scores, AUC, average precision, the score
range that shows a probability collapse) plus a score histogram per class, from which
``hpo thresholds`` computes precision and recall at any threshold without retraining.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import SpecIssue
from hpo_core.metrics import HISTOGRAM_ATTR
from hpo_core.objectives.context import TrialContext
from hpo_core.objectives.rules import check_divisible, check_rules, param_values

if TYPE_CHECKING:
    from hpo_core.data.tabular.dataset import BinaryData
    from hpo_core.objectives.registry import DataReport
    from hpo_core.spec import MetricsSpec, SweepSpec

__all__ = [
    "HARD_LIMITS",
    "METRIC_NAMES",
    "check_data",
    "check_spec",
    "describe_data",
    "objective",
    "train_config",
]


IMBALANCE = ("weighted", "sampling", "none")
# figures a trial records (the top-k% ones follow metrics.top_percents); `metric` is one of them
METRIC_NAMES = ("precision", "recall", "auc", "average_precision")

HARD_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "lr": (1e-7, 1.0),
    "weight_decay": (0.0, 1.0),
    "dropout": (0.0, 0.9),
    "d_model": (8, 4096),
    "n_layers": (1, 48),
    "window": (1, 1024),
    "hidden": (8, 65536),
    "batch_size": (8, 65536),
}


class _Sampled:
    """The data with the spec's imbalance handling applied to the training batches."""

    def __init__(self, data: BinaryData, sampling: str) -> None:
        self.data, self.sampling, self.n_classes = data, sampling, 2

    def train_batches(self, batch_size: int, generator: Any) -> Any:
        return self.data.train_batches(batch_size, generator, sampling=self.sampling)

    def val_batches(self, batch_size: int) -> Any:
        return self.data.val_batches(batch_size)


def _prepare(
    params: dict[str, Any], data_settings: dict[str, Any], metrics: MetricsSpec, select: str
) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """(data, training view, task, model, model info) for one configuration."""
    from hpo_core.data.tabular.config import TabularConfig
    from hpo_core.data.tabular.dataset import load_binary_data
    from hpo_core.models import build_binary_model
    from hpo_core.training import BinaryTask

    where = {key: "data" for key in data_settings}
    data = load_binary_data(TabularConfig.from_params({**params, **data_settings}, where))
    imbalance = str(params.get("imbalance", "weighted"))
    model, info = build_binary_model(params, n_features=data.n_features, window=data.window)
    task = BinaryTask(
        pos_weight=data.pos_weight if imbalance == "weighted" else 1.0,
        select=select,
        threshold=metrics.threshold,
        top_percents=tuple(metrics.top_percents),
    )
    view = _Sampled(data, "balanced" if imbalance == "sampling" else "none")
    return data, view, task, model, info


def _final_figures(
    model: Any, task: Any, batches: Sequence[Any], metrics: MetricsSpec, *, device: Any
) -> tuple[dict[str, float], Any, Any]:
    """binary_metrics of the model over the batches, minus forbidden names; and (y, scores)."""
    from hpo_core.metrics import binary_metrics

    y, s, _ = task.scores(model, batches, device=device)
    figures = binary_metrics(
        y, s, threshold=metrics.threshold, top_percents=tuple(metrics.top_percents)
    )
    return {k: v for k, v in figures.items() if not metrics.is_forbidden(k)}, y, s


def objective(ctx: TrialContext) -> float:
    import optuna

    from hpo_core.metrics import score_histogram
    from hpo_core.training import EpochMetrics, TrainConfig, configure_threads, train_model

    configure_threads()
    params: dict[str, Any] = dict(ctx.params)
    metrics, select = ctx.spec.metrics, ctx.spec.metric
    config = TrainConfig.from_params(params)
    import torch

    torch.manual_seed(config.seed)  # the initial weights too: a seeded trial is reproducible
    data, view, task, model, info = _prepare(params, dict(ctx.data), metrics, select)
    for key in ("n_params", "budget", "budget_ratio", "ff_dim", "hidden"):
        if info.get(key) is not None:
            ctx.set_attr(key, info[key])
    ctx.set_constant("n_features", data.n_features)
    ctx.set_constant("window", data.window)
    for split in ("train", "val", "test"):
        ctx.set_constant(f"positive_rate_{split}", round(data.positive_rate(split), 6))

    seen: list[EpochMetrics] = []

    def on_epoch_end(epoch: EpochMetrics) -> None:
        seen.append(epoch)
        ctx.report(epoch.val_score, epoch.epoch)

    try:
        result = train_model(
            model,
            view,
            config,
            task=task,
            on_epoch_end=on_epoch_end,
            checkpoint=ctx,
            on_resume=seen.extend,
        )
    except optuna.TrialPruned:
        ctx.set_attr("epochs_trained", len(seen))
        ctx.set_attr("train_seconds", round(sum(m.seconds for m in seen), 3))
        raise
    model.load_state_dict(result.best_state)
    batches = data.val_batches(config.batch_size)
    device = torch.device(result.device)
    figures, y, s = _final_figures(model, task, batches, metrics, device=device)
    for key, value in figures.items():
        ctx.set_attr(key, value)
    ctx.set_attr(HISTOGRAM_ATTR, score_histogram(y, s).to_dict())
    ctx.set_attr("epochs_trained", result.epochs_trained)
    if result.resumed_epoch is not None:
        ctx.set_attr("resumed_epoch", result.resumed_epoch)
    ctx.set_attr("best_epoch", result.best_epoch)
    ctx.set_attr("train_seconds", round(result.train_seconds, 3))
    ctx.set_attr("samples_per_second", round(result.samples_per_second, 1))
    ctx.set_attr("device", result.device)
    return float(figures[select])


def _allowed_metrics(metrics: MetricsSpec) -> list[str]:
    tops = [
        f"{kind}_top_{format(k, 'g')}pct" for k in metrics.top_percents for kind in METRIC_NAMES[:2]
    ]
    return [*METRIC_NAMES, *tops]


# Rules every value of a parameter must satisfy, checked over the whole search space.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: v in ("transformer", "mlp"), "must be 'transformer' or 'mlp'"),
    "imbalance": (lambda v: v in IMBALANCE, f"must be one of {', '.join(IMBALANCE)}"),
    "d_model": (lambda v: v >= 1, "must be >= 1"),
    "n_layers": (lambda v: v >= 1, "must be >= 1"),
    "n_heads": (lambda v: v >= 1, "must be >= 1"),
    "hidden": (lambda v: v >= 1, "must be >= 1"),
    "dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "lr": (lambda v: v > 0, "must be > 0"),
    "weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "batch_size": (lambda v: v >= 1, "must be >= 1"),
    "epochs": (lambda v: v >= 1, "must be >= 1"),
}


def check_spec(spec: SweepSpec) -> list[SpecIssue]:
    """Problems that would fail trials, found without data or torch: the metric, the data
    settings, parameter values, and budgets no model of the searched shape can meet."""
    from hpo_core.data.tabular.config import TabularConfig
    from hpo_core.models import parse_budget, transformer_budget_problem

    issues: list[SpecIssue] = []
    allowed = _allowed_metrics(spec.metrics)
    if spec.metric not in allowed:
        issues.append(
            SpecIssue(
                "metric" if spec.metrics.optimize is None else "metrics.optimize",
                f"binary_classifier records {', '.join(allowed)}; optimise one of them, "
                f"not {spec.metric!r}",
            )
        )
    if spec.direction != "maximize":
        issues.append(
            SpecIssue(
                "direction", "every figure of binary_classifier is better higher; use maximize"
            )
        )
    data_keys = dict(spec.data)
    issues += [
        SpecIssue(path, message)
        for path, message in TabularConfig.problems(
            {**spec.fixed, **data_keys}, {k: "data" for k in data_keys}
        )
    ]
    tiers = data_keys.get("tiers") or spec.fixed.get("tiers") or {}
    tier = param_values(spec, "tier")
    if tier and tiers:
        unknown = [t for t in tier[1] if t not in tiers]
        if unknown:
            issues.append(
                SpecIssue(
                    tier[0],
                    f"tier {unknown[0]!r} is not in data.tiers ({', '.join(tiers)}); "
                    "declare it there or drop it",
                )
            )
    issues += check_rules(spec, _RULES)
    issues += check_divisible(spec, "d_model", "n_heads", defaults=(128, 4))
    d_model = param_values(spec, "d_model", 128)
    assert d_model is not None
    budgets = param_values(spec, "budget")
    kinds = param_values(spec, "model", "transformer")
    if budgets is not None and kinds is not None and "transformer" in kinds[1]:
        layers = param_values(spec, "n_layers", 2)
        window = data_keys.get("window", spec.fixed.get("window", 16))
        assert layers is not None
        if not isinstance(window, int) or window < 1:
            return issues  # TabularConfig.problems has said so
        for b, d, n in itertools.product(budgets[1], d_model[1], layers[1]):
            try:
                budget = parse_budget(b)
            except ValueError as exc:
                issues.append(SpecIssue(budgets[0], str(exc)))
                break
            if not (isinstance(d, int) and isinstance(n, int) and d >= 1 and n >= 1):
                continue  # the rules above have said so
            problem = transformer_budget_problem(
                budget, n_features=1, window=window, d_model=d, n_layers=n
            )
            if problem:
                issues.append(SpecIssue(budgets[0], problem))
                break
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
    Extras: the validation and test figures at the best epoch, and threshold tables (markdown,
    CSV and a precision/recall-vs-threshold plot) on both splits."""
    import torch

    from hpo_core.metrics import (
        format_threshold_table,
        precision_recall_vs_threshold,
        threshold_for_precision,
        threshold_table,
    )
    from hpo_core.spec import MetricsSpec
    from hpo_core.training import TrainConfig, configure_threads, train_model

    configure_threads()
    metrics = spec.metrics if spec is not None else MetricsSpec()
    select = spec.metric if spec is not None else "auc"
    torch.manual_seed(seed)
    data, view, task, model, info = _prepare(params, data_settings, metrics, select)
    config = TrainConfig.from_params(
        params, epochs=epochs, early_stop_patience=early_stop_patience, seed=seed
    )
    result = train_model(model, view, config, task=task, on_epoch_end=on_epoch_end)
    model.load_state_dict(result.best_state)
    model.to("cpu").eval()
    cpu = torch.device("cpu")
    finals: dict[str, float] = {}
    tables: dict[str, Any] = {}
    artifacts: dict[str, str | bytes] = {}
    for split, batches in (
        ("val", data.val_batches(config.batch_size)),
        ("test", data.test_batches(config.batch_size)),
    ):
        figures, y, s = _final_figures(model, task, batches, metrics, device=cpu)
        finals |= {f"{split}_{k}": v for k, v in figures.items()}
        tables[split] = threshold_table(y, s)
        chosen = threshold_for_precision(
            tables[split], metrics.required_precision or 0.5, min_predicted=metrics.min_predicted
        )
        if chosen is not None:
            finals[f"{split}_threshold_for_precision"] = chosen.threshold
            finals[f"{split}_recall_at_required_precision"] = chosen.recall
        artifacts[f"thresholds_{split}.md"] = format_threshold_table(
            tables[split],
            required=metrics.required_precision,
            min_predicted=metrics.min_predicted,
        )
        artifacts[f"thresholds_{split}.csv"] = _threshold_csv(tables[split])
    artifacts["precision_recall_vs_threshold.png"] = precision_recall_vs_threshold(
        tables, required=metrics.required_precision, title="champion: validation vs test"
    )
    example = data.windows(data.val_idx[:2]).numpy()
    extras = {
        "input_example": example,
        "input_shape": (-1, data.window, data.n_features),
        "metrics": finals | {"budget_ratio": info.get("budget_ratio") or float("nan")},
        "artifacts": artifacts,
        "val_batches": data.val_batches(config.batch_size),
    }
    return model, result, extras


def _threshold_csv(rows: Sequence[Any]) -> str:
    lines = ["threshold,precision,recall,predicted_positives,true_positives,false_positives"]
    lines += [
        f"{r.threshold:.4g},{r.precision:.6g},{r.recall:.6g},{r.predicted_positives},"
        f"{r.true_positives},{r.false_positives}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def check_data(spec: SweepSpec) -> tuple[str, str, dict[str, Any]]:
    """The pre-launch data check: the table loads, labels are 0/1, times are ordered, every tier
    resolves, and each split has positives."""
    from hpo_core.data.tabular.check import check_table
    from hpo_core.data.tabular.config import TabularConfig

    where = {key: "data" for key in spec.data}
    return check_table(TabularConfig.from_params({**spec.fixed, **spec.data}, where))


def describe_data(
    spec: SweepSpec,
    *,
    generate: bool = False,
    rows: int = 20000,
    seed: int = 0,
    on_written: Callable[[int, Path], None] | None = None,
) -> DataReport:
    """`hpo data` for a binary_classifier spec: its feature table checked (rows, tiers, positive
    rates per split); with ``generate``, the synthetic series written to ``data.path`` first (never
    over a file; ``on_written(rows, path)`` says so)."""
    from hpo_core.data.tabular.check import check_table
    from hpo_core.data.tabular.config import TabularConfig
    from hpo_core.data.tabular.files import write_table
    from hpo_core.data.tabular.synthetic import generate_binary_dataset
    from hpo_core.errors import DataError
    from hpo_core.objectives.registry import DataReport

    where = {key: "data" for key in spec.data}
    config = TabularConfig.from_params({**spec.fixed, **spec.data}, where)
    if generate:
        path = Path(config.path)
        if path.exists():
            raise DataError(
                f"data.path: {path} exists already; delete it to generate a new one, or use it"
            )
        frame = generate_binary_dataset(rows, seed=seed)
        write_table(frame, path)
        if on_written is not None:
            on_written(len(frame), path)
    status, reason, details = check_table(config)
    if status == "fail":
        raise DataError(f"data: {reason}")
    return DataReport([f"{status}: {reason}"], {"status": status, "reason": reason, **details})

"""Threshold sweeps of a sweep's best models (seed 004: "show precision and recall SEPARATELY
across threshold changes").

Each trial of a binary objective stores a per-class histogram of its validation scores (100
bins on [0, 1]); the precision and recall at every bin edge follow from it exactly, so the top
models are swept without retraining them. For each model: a table of precision, recall and
predicted positives per threshold, and the threshold that reaches the required precision at the
best recall (with at least ``min_predicted`` predicted positives, so that one lucky hit does not
count as 100% precision). One plot shows precision and recall against the threshold for all of
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError
from hpo_core.metrics import HISTOGRAM_ATTR

if TYPE_CHECKING:
    from hpo_core.metrics import ThresholdRow
    from hpo_core.study import SweepStudy

__all__ = ["ModelThresholds", "ThresholdReport", "threshold_report", "write_threshold_report"]


@dataclass(frozen=True)
class ModelThresholds:
    rank: int  # in the sweep, by the optimised metric
    trial: int
    value: float  # the optimised metric
    params: dict[str, Any]
    rows: list[ThresholdRow]  # one per threshold, ascending
    chosen: ThresholdRow | None  # best recall at the required precision, None when unreachable

    @property
    def label(self) -> str:
        return f"trial {self.trial}"


@dataclass(frozen=True)
class ThresholdReport:
    study_name: str
    metric: str
    required_precision: float
    min_predicted: int
    models: list[ModelThresholds]
    skipped: list[int]  # top trials without a stored histogram (older objective versions)


def threshold_report(
    sweep: SweepStudy,
    *,
    top: int | None = None,
    required_precision: float | None = None,
    min_predicted: int | None = None,
    thresholds: list[float] | None = None,
) -> ThresholdReport:
    """Threshold tables of the ``top`` best completed trials (spec ``metrics:`` defaults)."""
    from hpo_core.metrics import (
        ScoreHistogram,
        threshold_for_precision,
        threshold_table_from_histogram,
    )
    from hpo_core.study import top_trials

    m = sweep.spec.metrics
    top = top or m.thresholds_top
    required = required_precision if required_precision is not None else m.required_precision
    required = 0.5 if required is None else required
    min_predicted = min_predicted if min_predicted is not None else m.min_predicted
    models, skipped = [], []
    entries = top_trials(sweep, top, keep=(HISTOGRAM_ATTR,))
    if not entries:
        raise HpoError(f"{sweep.name}: no completed trials yet; run the sweep first")
    for entry in entries:
        raw = entry.attrs.pop(HISTOGRAM_ATTR, None)
        if not isinstance(raw, dict):
            skipped.append(entry.number)
            continue
        rows = threshold_table_from_histogram(ScoreHistogram.from_dict(raw), thresholds)
        chosen = threshold_for_precision(rows, required, min_predicted=min_predicted)
        models.append(
            ModelThresholds(entry.rank, entry.number, entry.value, entry.params, rows, chosen)
        )
    if not models:
        raise HpoError(
            f"{sweep.name}: its trials recorded no validation score histograms; threshold "
            "sweeps need an objective that records them (binary_classifier does)"
        )
    return ThresholdReport(sweep.name, sweep.spec.metric, required, min_predicted, models, skipped)


def _pct(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def render_markdown(report: ThresholdReport) -> str:
    """Summary table (best first), then one precision/recall table per model."""
    from hpo_core.metrics import format_threshold_table

    req = report.required_precision
    lines = [
        f"# Threshold sweep: {report.study_name}",
        "",
        f"Validation scores of the top {len(report.models)} trials. Precision first, recall "
        f"second; a threshold counts when precision >= {req:.0%} with at least "
        f"{report.min_predicted} predicted positives.",
        "",
        f"| rank | trial | {report.metric} | threshold | precision | recall "
        "| predicted positives |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model in report.models:
        c = model.chosen
        lines.append(
            f"| {model.rank} | {model.trial} | {model.value:.4f} | "
            + (
                f"{c.threshold:.2f} | {_pct(c.precision)} | {_pct(c.recall)} | "
                f"{c.predicted_positives} |"
                if c is not None
                else f"never reaches {req:.0%} | - | - | - |"
            )
        )
    if report.skipped:
        lines += ["", f"No score histogram for trials {', '.join(map(str, report.skipped))}."]
    for model in report.models:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in model.params.items()
        )
        lines += ["", f"## #{model.rank}: trial {model.trial}", "", params, ""]
        lines.append(
            format_threshold_table(
                model.rows, required=req, min_predicted=report.min_predicted
            ).rstrip()
        )
    lines += ["", "![precision and recall vs threshold](precision_recall_vs_threshold.png)"]
    return "\n".join(lines) + "\n"


def render_csv(report: ThresholdReport) -> str:
    lines = ["rank,trial,threshold,precision,recall,predicted_positives,true_positives,chosen"]
    for model in report.models:
        for row in model.rows:
            lines.append(
                f"{model.rank},{model.trial},{row.threshold:.4g},{row.precision:.6g},"
                f"{row.recall:.6g},{row.predicted_positives},{row.true_positives},"
                f"{int(row == model.chosen)}"
            )
    return "\n".join(lines) + "\n"


def write_threshold_report(report: ThresholdReport, out_dir: str | Path) -> list[Path]:
    """thresholds.md, thresholds.csv and precision_recall_vs_threshold.png in ``out_dir``."""
    from hpo_core.files import write_atomic
    from hpo_core.metrics import precision_recall_vs_threshold

    out = Path(out_dir)
    png = precision_recall_vs_threshold(
        {m.label: m.rows for m in report.models},
        required=report.required_precision,
        title=f"{report.study_name}: precision and recall vs threshold (validation)",
    )
    return [
        write_atomic(out / "thresholds.md", render_markdown(report)),
        write_atomic(out / "thresholds.csv", render_csv(report)),
        write_atomic(out / "precision_recall_vs_threshold.png", png),
    ]

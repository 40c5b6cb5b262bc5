"""Two sweeps side by side (seed 003: v2 vs v3): best, mean, trials, elite share per arm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpo_core.analysis.analyze import SweepAnalysis

__all__ = ["ComparisonRow", "compare_analyses"]


@dataclass(frozen=True)
class ComparisonRow:
    figure: str
    a: Any
    b: Any
    change: str  # "+12.0%", "+3", or "" when not comparable


def _change(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        if isinstance(a, int) and isinstance(b, int):
            return f"{b - a:+d}"
        return f"{(b - a) / abs(a):+.1%}" if a else f"{b - a:+.4g}"
    return ""


def compare_analyses(a: SweepAnalysis, b: SweepAnalysis) -> list[ComparisonRow]:
    sa, sb = a.summary, b.summary
    rows = [
        ComparisonRow("study", sa.study_name, sb.study_name, ""),
        ComparisonRow(
            f"best {a.spec.metric}",
            sa.best_value,
            sb.best_value,
            _change(sa.best_value, sb.best_value),
        ),
        ComparisonRow(
            f"mean {a.spec.metric}",
            sa.mean_value,
            sb.mean_value,
            _change(sa.mean_value, sb.mean_value),
        ),
        ComparisonRow(
            f"median {a.spec.metric}",
            sa.median_value,
            sb.median_value,
            _change(sa.median_value, sb.median_value),
        ),
        ComparisonRow("completed", sa.complete, sb.complete, _change(sa.complete, sb.complete)),
        ComparisonRow("pruned", sa.pruned, sb.pruned, _change(sa.pruned, sb.pruned)),
        ComparisonRow("failed", sa.failed, sb.failed, _change(sa.failed, sb.failed)),
        ComparisonRow(
            "searched parameters",
            len(a.spec.param_ranges),
            len(b.spec.param_ranges),
            _change(len(a.spec.param_ranges), len(b.spec.param_ranges)),
        ),
        ComparisonRow(
            "elite threshold",
            a.elites.threshold,
            b.elites.threshold,
            _change(a.elites.threshold, b.elites.threshold),
        ),
    ]
    arms_b = {arm.switch: arm for arm in b.elites.arms}
    for arm in a.elites.arms:
        other = arms_b.get(arm.switch)
        for x in arm.arms:
            y = next((y for y in other.arms if y.value == x.value), None) if other else None
            rows.append(
                ComparisonRow(
                    f"{arm.switch}={x.value!r}: trials / mean / elite share",
                    f"{x.trials} / {_fmt(x.mean)} / {x.elite_share:.0%}",
                    f"{y.trials} / {_fmt(y.mean)} / {y.elite_share:.0%}" if y else "-",
                    _change(x.mean, y.mean)
                    if y and x.mean is not None and y.mean is not None
                    else "",
                )
            )
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

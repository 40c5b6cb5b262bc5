"""Group against group: budgets, feature tiers, any categorical the spec names in
``analysis.compare`` (seed 004: "20M beats 2M and 200M", "a50 beats a100").

Per group of completed trials: the count, best and mean of the optimised metric, and the mean of
each priority metric the trials recorded. The overall test is the parameter's own from
:mod:`hpo_core.analysis.effects` (Kruskal-Wallis, or Mann-Whitney for two booleans); the leading
group (best mean) is then tested against each other group with a two-sided Mann-Whitney U test,
Benjamini-Hochberg adjusted within the parameter. A claim "beats" needs adjusted p < 0.05.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

from hpo_core.analysis.effects import PairTest, ParamEffect
from hpo_core.analysis.trials import ATTR, TrialsTable, coerce_value

__all__ = ["GroupComparison", "GroupRow", "PairTest", "compare_groups"]

SIGNIFICANT = 0.05


@dataclass(frozen=True)
class GroupRow:
    value: Any  # the parameter's value
    n: int  # completed trials with it
    best: float | None  # of the optimised metric
    mean: float | None
    metrics: dict[str, float | None] = field(default_factory=dict)  # priority metric -> mean


@dataclass(frozen=True)
class GroupComparison:
    param: str
    rows: list[GroupRow]  # best mean first
    test: str  # the overall test (kruskal-wallis | mann-whitney | spearman | none)
    p: float | None
    p_adjusted: float | None  # over every test of the analysis (effects)
    pairs: list[PairTest]
    underpowered: bool  # some group has fewer than analysis.min_group_trials trials
    verdict: str  # one sentence for the report


def _mean(series: pd.Series) -> float | None:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def compare_groups(
    table: TrialsTable,
    effects: list[ParamEffect],
    *,
    params: list[str],
    metrics: list[str],
    min_group_trials: int = 5,
) -> list[GroupComparison]:
    """One :class:`GroupComparison` per name in ``params`` (searched categoricals/booleans)."""
    done = table.complete
    maximize = table.spec.direction == "maximize"
    metric = table.spec.metric
    out = []
    for name in params:
        spec = table.spec.param_ranges[name]
        column = table.param(name)
        present = done[done[column].notna()] if column in done else done.iloc[0:0]
        rows = []
        for value, chunk in present.groupby(column, sort=True):
            values = chunk["value"].astype(float)
            rows.append(
                GroupRow(
                    value=coerce_value(spec, value),
                    n=len(chunk),
                    best=float(values.max() if maximize else values.min()),
                    mean=float(values.mean()),
                    metrics={
                        m: _mean(chunk[ATTR + m]) if ATTR + m in chunk else None for m in metrics
                    },
                )
            )
        rows.sort(key=lambda r: r.mean if r.mean is not None else -math.inf, reverse=maximize)
        pairs: list[PairTest] = []
        if len(rows) >= 2:
            lead = rows[0]
            coerced = present[column].map(lambda v, p=spec: coerce_value(p, v))
            lead_values = present[coerced == lead.value]
            raw = []
            for other in rows[1:]:
                other_values = present[coerced == other.value]
                p = None
                if len(lead_values) >= 2 and len(other_values) >= 2:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _, p_raw = stats.mannwhitneyu(
                            lead_values["value"].astype(float),
                            other_values["value"].astype(float),
                            alternative="two-sided",
                        )
                    p = float(p_raw) if math.isfinite(p_raw) else None
                raw.append((other, p))
            tested = [p for _, p in raw if p is not None]
            adjusted = list(stats.false_discovery_control(tested, method="bh")) if tested else []
            it = iter(adjusted)
            for other, p in raw:
                pairs.append(
                    PairTest(
                        lead.value,
                        other.value,
                        p,
                        float(next(it)) if p is not None else None,
                        lead.n,
                        other.n,
                    )
                )
        effect = next((e for e in effects if e.name == name), None)
        underpowered = not rows or min(r.n for r in rows) < min_group_trials
        out.append(
            GroupComparison(
                param=name,
                rows=rows,
                test=effect.test if effect else "none",
                p=effect.p if effect else None,
                p_adjusted=effect.p_adjusted if effect else None,
                pairs=pairs,
                underpowered=underpowered,
                verdict=_verdict(name, rows, pairs, metric, underpowered),
            )
        )
    return out


def _verdict(
    name: str, rows: list[GroupRow], pairs: list[PairTest], metric: str, underpowered: bool
) -> str:
    if len(rows) < 2:
        return f"{name}: fewer than two groups with completed trials; nothing to compare"
    lead = rows[0]
    beaten = [t for t in pairs if t.p_adjusted is not None and t.p_adjusted < SIGNIFICANT]
    level = [t for t in pairs if t not in beaten]
    text = f"{name}={lead.value} has the best mean {metric} ({lead.mean:.4g}, n={lead.n})"
    if beaten:
        text += "; it beats " + " and ".join(
            f"{t.other} (p_adj={t.p_adjusted:.3g})" for t in beaten
        )
    if level:
        text += "; not significantly better than " + " and ".join(
            f"{t.other} (p_adj={t.p_adjusted:.3g})" if t.p_adjusted is not None else f"{t.other}"
            for t in level
        )
    if underpowered:
        text += " (underpowered: some group has few trials)"
    return text

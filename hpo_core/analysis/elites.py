"""The elite trials (the top quantile) and what they agree on.

Convergence: for a categorical or boolean, the share of elites (where the parameter exists) with
its most common value. Range: for a numeric parameter, the elites' min and max. Boundary hits: a
bound is hit (the optimum likely lies beyond it) when the parameter's trend points at it and
survives the Benjamini-Hochberg correction (adjusted p < 0.05, :mod:`.effects`), it has no
interior optimum (:mod:`.shapes`), and some elite reached the zone within ``boundary_fraction`` of
the range from that bound (log space for log parameters).
Arms: for each parameter others depend on (e.g. ``encoder_type``), every value with its completed
and pruned trials, mean, best and share of the elites; an arm is underpowered when it has fewer
than ``min_group_trials`` trials at the level its switch was judged at (:mod:`.effects`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from hpo_core.analysis.effects import ParamEffect
from hpo_core.analysis.shapes import units
from hpo_core.analysis.trials import TrialsTable, coerce_value
from hpo_core.spec import ParamSpec

__all__ = [
    "ArmComparison",
    "ArmStat",
    "EliteParam",
    "Elites",
    "elite_analysis",
    "to_unit",
]


@dataclass(frozen=True)
class EliteParam:
    name: str
    n_elites: int  # elites where the parameter exists
    n_values_tried: int  # distinct values over all trials that ran it
    top_value: Any = None  # categorical/bool: most common value among elites
    convergence: float | None = None  # its share of those elites
    low: float | None = None  # numeric: elite min
    high: float | None = None  # numeric: elite max
    share_at_low: float | None = None  # elites in the zone at the lower bound
    share_at_high: float | None = None
    trials_at_low: float | None = None  # completed trials in the same zones, for comparison
    trials_at_high: float | None = None
    hit: Literal["low", "high"] | None = None  # a boundary hit
    elites_at_hit: int = 0  # elites in the zone of the hit bound


@dataclass(frozen=True)
class ArmStat:
    value: Any
    trials: int  # completed trials in this arm
    mean: float | None
    best: float | None
    elites: int
    elite_share: float  # of all elites
    underpowered: bool
    pruned: int = 0  # pruned trials in this arm


@dataclass(frozen=True)
class ArmComparison:
    switch: str  # the parameter others depend on
    dependents: list[str]
    arms: list[ArmStat]
    best_arm: Any
    underpowered: bool


@dataclass(frozen=True)
class Elites:
    quantile: float
    threshold: float | None  # worst elite value
    numbers: list[int]  # elite trial numbers, best first
    params: dict[str, EliteParam]
    arms: list[ArmComparison]


def to_unit(param: ParamSpec, value: float) -> float:
    """Position of ``value`` in the parameter's range, 0 at low and 1 at high (log if log)."""
    assert param.low is not None and param.high is not None
    low, high, x = float(param.low), float(param.high), float(value)
    if param.log:
        low, high, x = math.log(low), math.log(high), math.log(max(x, 1e-300))
    return 0.5 if high == low else (x - low) / (high - low)


def _elite_param(
    name: str,
    param: ParamSpec,
    elites: pd.DataFrame,
    done: pd.DataFrame,
    column: pd.Series,
    fraction: float,
    trend: Literal["low", "high"] | None,
) -> EliteParam:
    values = elites[column.name].dropna()
    tried = int(column.dropna().nunique())
    if param.type in ("categorical", "bool"):
        if values.empty:
            return EliteParam(name, 0, tried)
        counts = values.value_counts()
        top = counts.index[0]
        return EliteParam(
            name,
            len(values),
            tried,
            top_value=coerce_value(param, top),
            convergence=float(counts.iloc[0] / len(values)),
        )
    if values.empty:
        return EliteParam(name, 0, tried)
    position = units(param, values.to_numpy(dtype=float))
    at_low, at_high = float((position <= fraction).mean()), float((position >= 1 - fraction).mean())
    everyone = units(param, done[column.name].dropna().to_numpy(dtype=float))
    all_low = float((everyone <= fraction).mean()) if len(everyone) else 0.0
    all_high = float((everyone >= 1 - fraction).mean()) if len(everyone) else 0.0
    hit: Literal["low", "high"] | None = None
    share = at_high if trend == "high" else at_low
    if trend is not None and share > 0:
        hit = trend
    return EliteParam(
        name,
        len(values),
        tried,
        low=float(values.min()),
        high=float(values.max()),
        share_at_low=at_low,
        share_at_high=at_high,
        trials_at_low=all_low,
        trials_at_high=all_high,
        hit=hit,
        elites_at_hit=round(share * len(values)) if hit else 0,
    )


def elite_analysis(
    table: TrialsTable,
    *,
    quantile: float = 0.25,
    boundary_fraction: float = 0.1,
    min_group_trials: int = 5,
    effects: list[ParamEffect] | None = None,
) -> Elites:
    """The elites of ``table`` (its completed trials); ``effects`` (adjusted) give the trends
    behind boundary hits and the levels arms are judged at."""
    done = table.complete  # best first
    n_elite = max(1, math.ceil(quantile * len(done))) if len(done) else 0
    elites = done.head(n_elite)
    spec = table.spec
    by_name = {e.name: e for e in effects or []}
    trends: dict[str, Literal["low", "high"]] = {}
    for e in by_name.values():
        if e.kind == "numeric" and e.peak is None and e.shape in ("increase", "decrease"):
            trends[e.name] = "high" if e.shape == "increase" else "low"
    params = {
        name: _elite_param(
            name,
            param,
            elites,
            done,
            table.frame[table.param(name)],
            boundary_fraction,
            trends.get(name),
        )
        for name, param in spec.param_ranges.items()
    }
    arms = []
    switches: dict[str, list[str]] = {}
    for name, param in spec.param_ranges.items():
        for parent in param.when or {}:
            if parent in spec.param_ranges:
                switches.setdefault(parent, []).append(name)
    maximize = spec.direction == "maximize"
    pruned_rows = table.frame[table.frame["state"] == "PRUNED"]
    for switch, dependents in switches.items():
        column = table.param(switch)
        param = spec.param_ranges[switch]
        judged = {g.value: g.n for g in by_name[switch].groups} if switch in by_name else {}
        pruned = pruned_rows[column].map(lambda v, p=param: coerce_value(p, v)).value_counts()
        stats = []
        for value, chunk in done.groupby(column, sort=True):
            in_elite = int((elites[column] == value).sum())
            arm = coerce_value(param, value)
            stats.append(
                ArmStat(
                    value=arm,
                    trials=len(chunk),
                    mean=float(chunk["value"].mean()),
                    best=float(chunk["value"].max() if maximize else chunk["value"].min()),
                    elites=in_elite,
                    elite_share=in_elite / n_elite if n_elite else 0.0,
                    underpowered=judged.get(arm, len(chunk)) < min_group_trials,
                    pruned=int(pruned.get(arm, 0)),
                )
            )
        seen = {s.value for s in stats}
        for choice in param.choices or ([True, False] if param.type == "bool" else []):
            if choice not in seen:
                n = judged.get(choice, 0)
                stats.append(
                    ArmStat(
                        choice,
                        0,
                        None,
                        None,
                        0,
                        0.0,
                        n < min_group_trials,
                        int(pruned.get(choice, 0)),
                    )
                )
        ranked = [s for s in stats if s.mean is not None]
        ranked.sort(key=lambda s: s.mean or 0.0, reverse=maximize)
        arms.append(
            ArmComparison(
                switch=switch,
                dependents=dependents,
                arms=stats,
                best_arm=ranked[0].value if ranked else None,
                underpowered=any(s.underpowered for s in stats),
            )
        )
    threshold = float(elites["value"].iloc[-1]) if n_elite else None
    return Elites(
        quantile=quantile,
        threshold=threshold,
        numbers=[int(n) for n in elites["number"]],
        params=params,
        arms=arms,
    )

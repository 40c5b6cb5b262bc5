"""The elite trials (the top quantile) and what they agree on.

Convergence: for a categorical or boolean, the share of elites (where the parameter exists) with
its most common value. Range: for a numeric parameter, the elites' min and max. Boundary hits: the
zone within ``boundary_fraction`` of the range from a bound (in log space for log parameters) is
hit when at least ``boundary_share`` of the elites sit in it, or when some elites sit in it and
the parameter's trend (Spearman p < 0.05) points at it (the optimum is likely beyond the bound).
Arms: for each parameter others depend on (e.g. ``encoder_type``), every value
with its trials, mean, best and share of the elites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from hpo_core.analysis.effects import ParamEffect
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


@dataclass(frozen=True)
class ArmStat:
    value: Any
    trials: int  # completed trials in this arm
    mean: float | None
    best: float | None
    elites: int
    elite_share: float  # of all elites
    underpowered: bool


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
    share: float,
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
    units = np.array([to_unit(param, v) for v in values.astype(float)])
    at_low, at_high = float((units <= fraction).mean()), float((units >= 1 - fraction).mean())
    everyone = np.array([to_unit(param, v) for v in done[column.name].dropna().astype(float)])
    all_low = float((everyone <= fraction).mean()) if len(everyone) else 0.0
    all_high = float((everyone >= 1 - fraction).mean()) if len(everyone) else 0.0

    def hit_at(side: Literal["low", "high"], elite: float, base: float) -> bool:
        return elite >= share or (trend == side and elite > 0)

    hit: Literal["low", "high"] | None = None
    if hit_at("high", at_high, all_high) and at_high >= at_low:
        hit = "high"
    elif hit_at("low", at_low, all_low):
        hit = "low"
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
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def elite_analysis(
    table: TrialsTable,
    *,
    quantile: float = 0.25,
    boundary_fraction: float = 0.1,
    boundary_share: float = 0.34,
    min_group_trials: int = 5,
    effects: list[ParamEffect] | None = None,
) -> Elites:
    done = table.complete  # best first
    n_elite = max(1, math.ceil(quantile * len(done))) if len(done) else 0
    elites = done.head(n_elite)
    spec = table.spec
    trends: dict[str, Literal["low", "high"]] = {}
    for e in effects or []:
        if e.test == "spearman" and e.p is not None and e.p < 0.05 and e.rho:
            trends[e.name] = "high" if e.direction == "increase" else "low"
    params = {
        name: _elite_param(
            name,
            param,
            elites,
            done,
            table.frame[table.param(name)],
            boundary_fraction,
            boundary_share,
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
    for switch, dependents in switches.items():
        column = table.param(switch)
        stats = []
        for value, chunk in done.groupby(column, sort=True):
            in_elite = int((elites[column] == value).sum())
            stats.append(
                ArmStat(
                    value=coerce_value(spec.param_ranges[switch], value),
                    trials=len(chunk),
                    mean=float(chunk["value"].mean()),
                    best=float(chunk["value"].max() if maximize else chunk["value"].min()),
                    elites=in_elite,
                    elite_share=in_elite / n_elite if n_elite else 0.0,
                    underpowered=len(chunk) < min_group_trials,
                )
            )
        param = spec.param_ranges[switch]
        seen = {s.value for s in stats}
        for choice in param.choices or ([True, False] if param.type == "bool" else []):
            if choice not in seen:
                stats.append(ArmStat(choice, 0, None, None, 0, 0.0, True))
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

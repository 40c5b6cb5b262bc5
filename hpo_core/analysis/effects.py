"""Which way each parameter pushes the objective, how strongly, and how sure we can be.

Numeric parameters (float, int, and categoricals whose choices are all numbers): Spearman's rho
and its p-value against the objective. Booleans: mean for true vs false and the Mann-Whitney U
p-value. Categoricals: mean per choice, best vs worst, and the Kruskal-Wallis p-value. Every test
uses only the completed trials in which the parameter exists (a conditional parameter is judged
where it was active). The p-values of all tests are also given Benjamini-Hochberg adjusted, and
an effect that rests on fewer than ``min_group_trials`` trials in any group is underpowered.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from scipy import stats

from hpo_core.analysis.trials import TrialsTable, coerce_value

__all__ = ["GroupStat", "ParamEffect", "directionality", "param_kind"]

Kind = Literal["numeric", "ordinal", "bool", "categorical"]


@dataclass(frozen=True)
class GroupStat:
    value: Any
    n: int
    mean: float
    best: float


@dataclass(frozen=True)
class ParamEffect:
    name: str
    kind: Kind
    n: int  # completed trials where the parameter exists
    n_distinct: int
    test: str  # spearman | mann-whitney | kruskal-wallis | none
    statistic: float | None  # rho for spearman
    p: float | None
    p_adjusted: float | None = None  # Benjamini-Hochberg over every test of the analysis
    direction: Literal["increase", "decrease"] | None = None  # better when the value goes ...
    strength: Literal["strong", "moderate", "weak", "none"] = "none"
    groups: list[GroupStat] = field(default_factory=list)  # per value (bool, categorical, ordinal)
    best_value: Any = None  # the group with the best mean
    worst_value: Any = None
    difference: float | None = None  # best mean - worst mean (absolute, in objective units)
    relative_difference: float | None = None  # difference / |worst mean|
    underpowered: bool = False

    @property
    def rho(self) -> float | None:
        return self.statistic if self.test == "spearman" else None


def param_kind(table: TrialsTable, name: str) -> Kind:
    param = table.spec.param_ranges[name]
    if param.type in ("float", "int"):
        return "numeric"
    if param.type == "bool":
        return "bool"
    choices = param.choices or []
    if choices and all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices):
        return "ordinal"
    return "categorical"


def _strength(p: float | None, size: float) -> Literal["strong", "moderate", "weak", "none"]:
    """Stars of seed 000: p < 0.01 strong, < 0.10 moderate, < 0.30 weak (with some size)."""
    if p is None or size == 0:
        return "none"
    if p < 0.01:
        return "strong"
    if p < 0.10:
        return "moderate"
    if p < 0.30:
        return "weak"
    return "none"


def _groups(values: pd.Series, target: pd.Series, maximize: bool, param: Any) -> list[GroupStat]:
    out = []
    for value, chunk in target.groupby(values, sort=True):
        out.append(
            GroupStat(
                value=coerce_value(param, value),
                n=len(chunk),
                mean=float(chunk.mean()),
                best=float(chunk.max() if maximize else chunk.min()),
            )
        )
    return out


def _effect(table: TrialsTable, name: str, done: pd.DataFrame, min_group: int) -> ParamEffect:
    kind = param_kind(table, name)
    column = done[table.param(name)]
    present = column.notna()
    values, target = column[present], done["value"][present].astype(float)
    maximize = table.spec.direction == "maximize"
    n, n_distinct = len(values), int(values.nunique())
    if n < 3 or n_distinct < 2:
        return ParamEffect(name, kind, n, n_distinct, "none", None, None, underpowered=True)
    param = table.spec.param_ranges[name]
    groups = _groups(values, target, maximize, param) if kind != "numeric" else []
    ranked = sorted(groups, key=lambda g: g.mean, reverse=maximize)
    best, worst = (ranked[0], ranked[-1]) if ranked else (None, None)
    diff = rel = None
    if best is not None and worst is not None:
        diff = best.mean - worst.mean
        rel = abs(diff) / abs(worst.mean) if worst.mean else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input and the like: p is then nan -> None
        if kind in ("numeric", "ordinal"):
            rho, p = stats.spearmanr(values.astype(float), target)
            test, statistic = "spearman", float(rho)
            underpowered = n < 2 * min_group or (
                kind == "ordinal" and min(g.n for g in groups) < min_group
            )
        elif kind == "bool":
            a = target[values.astype(bool)]
            b = target[~values.astype(bool)]
            statistic, p = stats.mannwhitneyu(a, b, alternative="two-sided")
            test = "mann-whitney"
            underpowered = min(len(a), len(b)) < min_group
        else:
            samples = [target[values == g.value] for g in groups]
            statistic, p = stats.kruskal(*samples)
            test = "kruskal-wallis"
            underpowered = min(g.n for g in groups) < min_group
    p_value = float(p) if p is not None and math.isfinite(p) else None
    stat = float(statistic) if statistic is not None and math.isfinite(statistic) else None
    direction: Literal["increase", "decrease"] | None = None
    if test == "spearman" and stat:
        direction = "increase" if (stat > 0) == maximize else "decrease"
    size = abs(stat) if test == "spearman" and stat is not None else abs(diff or 0.0)
    return ParamEffect(
        name,
        kind,
        n,
        n_distinct,
        test=test,
        statistic=stat,
        p=p_value,
        direction=direction,
        strength=_strength(p_value, size),
        groups=groups,
        best_value=best.value if best else None,
        worst_value=worst.value if worst else None,
        difference=diff,
        relative_difference=rel,
        underpowered=underpowered,
    )


def directionality(table: TrialsTable, *, min_group_trials: int = 5) -> list[ParamEffect]:
    """One :class:`ParamEffect` per searched parameter, strongest evidence first."""
    done = table.complete
    effects = [_effect(table, name, done, min_group_trials) for name in table.spec.param_ranges]
    tested = [i for i, e in enumerate(effects) if e.p is not None]
    if tested:
        adjusted = stats.false_discovery_control([effects[i].p for i in tested], method="bh")
        for i, p_adj in zip(tested, adjusted, strict=True):
            effects[i] = _replace(effects[i], p_adjusted=float(p_adj))
    return sorted(effects, key=lambda e: (e.p is None, e.p if e.p is not None else 1.0, e.name))


def _replace(effect: ParamEffect, **changes: Any) -> ParamEffect:
    from dataclasses import replace

    return replace(effect, **changes)

"""Which way each parameter pushes the objective, in what shape, how strongly, how sure we are.

Each parameter is judged at one level of the rung view (:mod:`.rungs`: the final values of
completed trials, then the rungs from the deepest down), PRUNED and COMPLETE trials alike: the
deepest level where it has the trials it needs (``2 x min_group_trials`` for a numeric parameter,
``min_group_trials`` in every group for the others) and where the additive model
(:mod:`.model`) can be fitted, so that the other parameters are held fixed; else the deepest
level with the trials it needs (tests on this parameter alone); else the level with the most
trials, marked underpowered. ``rung`` and ``n`` say where and on how many trials, ``adjusted``
whether the other parameters were held fixed.

The tests, in the additive model: a numeric parameter's slope where its trials are, and its
quadratic term (a parabola, :mod:`.shapes`: an interior optimum is a *peak*, "peak near X (A-B)",
else a trend that survives the correction is an *increase* or *decrease*); an F-test of a
boolean's or categorical's choices, and a contrast of the leading choice (best among those with
``min_group_trials`` trials) against each other one, the evidence behind dropping it. On the
parameter alone: Spearman (numeric, and categoricals whose choices are numbers) with a line and
a parabola over the range; Mann-Whitney U (two choices) or Kruskal-Wallis, and Mann-Whitney U
for each pair. Spearman's rho is given in both cases, as a description. Each pair also says at
how many rungs the other choice was worse than the leader (on raw means).

Every p-value of the analysis (main tests, quadratic terms, pairwise tests) is Benjamini-Hochberg
adjusted in one family (``p_adjusted``); strengths and shapes read the adjusted values. A
conditional parameter is judged over the trials where it exists.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from hpo_core.analysis.model import AdditiveModel, fit_additive
from hpo_core.analysis.rungs import FINAL, LEVEL, RungView, rung_view
from hpo_core.analysis.shapes import fit_shape, from_units, peak_of, span_of, units
from hpo_core.analysis.trials import TrialsTable, coerce_value

__all__ = [
    "SIGNIFICANT",
    "GroupStat",
    "HypothesisTest",
    "PairTest",
    "ParamEffect",
    "directionality",
    "hypothesis_tests",
    "param_kind",
]

Kind = Literal["numeric", "ordinal", "bool", "categorical"]
SIGNIFICANT = 0.05  # an adjusted p below this is a finding (a shape, a "beats")
MIN_TRIALS = 5  # a parameter with fewer trials (or fewer than two groups of 2) is not tested


@dataclass(frozen=True)
class GroupStat:
    value: Any
    n: int
    mean: float
    best: float


@dataclass(frozen=True)
class PairTest:
    leader: Any  # the group with the best mean
    other: Any
    p: float | None  # Mann-Whitney U, two-sided
    p_adjusted: float | None  # Benjamini-Hochberg
    n_leader: int
    n_other: int
    relative: float | None = None  # |difference| / |mean objective| (as ParamEffect's)
    rung: str = FINAL  # the level both were judged at
    worse_at: int = 0  # rungs (and final) where the other's mean was worse than the leader's
    compared_at: int = 0  # rungs where both had trials
    difference: float | None = None  # leader - other, objective units (model-adjusted if so)

    @property
    def worse_everywhere(self) -> bool:
        """The other group was worse at every rung where both ran (two rungs at least)."""
        return self.compared_at > 1 and self.worse_at == self.compared_at


@dataclass(frozen=True)
class ParamEffect:
    name: str
    kind: Kind
    n: int  # trials the test used (at ``rung``) where the parameter exists
    n_distinct: int
    # slope | anova (the additive model) or spearman | mann-whitney | kruskal-wallis | none
    test: str
    statistic: float | None  # Spearman's rho (numeric and ordinal; descriptive)
    p: float | None
    p_adjusted: float | None = None  # Benjamini-Hochberg over every test of the analysis
    direction: Literal["increase", "decrease"] | None = None  # better when the value goes ...
    strength: Literal["strong", "moderate", "weak", "none"] = "none"  # from p_adjusted
    groups: list[GroupStat] = field(default_factory=list)  # per value (bool, categorical, ordinal)
    best_value: Any = None  # the best group (adjusted for the other parameters if modelled)
    worst_value: Any = None
    # best - worst, in objective units: groups, or for a numeric parameter the fitted curve over
    # its range (the parabola for a peak, else the line)
    difference: float | None = None
    # |difference| / |mean objective of the completed trials| (of the rung's trials without any)
    relative_difference: float | None = None
    underpowered: bool = False
    rung: str = FINAL  # the level judged at (see :mod:`.rungs`)
    n_pruned: int = 0  # pruned trials among the n
    p_quadratic: float | None = None  # numeric: the parabola's quadratic term
    p_quadratic_adjusted: float | None = None
    # numeric: an interior optimum (a parabola opening the right way, its vertex's 95% interval
    # inside the range), in the parameter's units; None otherwise
    peak: float | None = None
    peak_low: float | None = None
    peak_high: float | None = None
    # with a peak: the fitted curve over the position u in the range (0 to 1, log space for log
    # parameters), as (b, c, shift): the objective moves by b x + c x^2, x = u - shift
    curve: tuple[float, float, float] | None = None
    pairs: list[PairTest] = field(default_factory=list)  # leader vs each other choice
    adjusted: bool = False  # tested in the additive model, the other parameters held fixed

    @property
    def rho(self) -> float | None:
        return self.statistic

    @property
    def shape(self) -> Literal["peak", "increase", "decrease", "none"]:
        """A peak whose quadratic term survives the correction, else a trend that does."""
        if self.peak is not None and _below(self.p_quadratic_adjusted, SIGNIFICANT):
            return "peak"
        if self.direction is not None and _below(self.p_adjusted, SIGNIFICANT):
            return self.direction
        return "none"


@dataclass(frozen=True)
class HypothesisTest:
    """One test of the analysis, for the report's table of every test."""

    param: str
    test: str  # spearman | quadratic | mann-whitney | kruskal-wallis
    claim: str  # what it tests, in words
    rung: str
    n: int
    p: float
    p_adjusted: float


def _below(p: float | None, threshold: float) -> bool:
    return p is not None and p < threshold


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


def _coerced(column: pd.Series, param: Any) -> pd.Series:
    """``column`` as the parameter's own values (looked up once per distinct value)."""
    return column.map({v: coerce_value(param, v) for v in column.dropna().unique()})


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


def _judging_level(
    present: pd.DataFrame,
    column: str,
    kind: Kind,
    levels: list[str],
    min_group: int,
    fits: Callable[[str], bool],
) -> tuple[str, bool]:
    """(level, powered): the deepest level with the trials a test needs where the additive model
    fits too (``fits``), else the deepest with the trials, else the one with the most trials
    (ties: the deeper)."""
    choices = present[column].unique()
    counts: dict[str, int] = {}
    powered = []
    for level in levels:
        at = present.loc[present[LEVEL + level].notna(), column]
        counts[level] = len(at)
        if kind == "numeric":
            enough = len(at) >= 2 * min_group and at.nunique() >= 2
        else:
            sizes = at.value_counts()
            enough = len(choices) >= 2 and all(sizes.get(c, 0) >= min_group for c in choices)
        if enough:
            powered.append(level)
    for level in powered:
        if fits(level):
            return level, True
    if powered:
        return powered[0], True
    return max(levels, key=lambda level: counts[level]), False


def _worse_at(
    present: pd.DataFrame, keys: pd.Series, levels: list[str], lead: Any, maximize: bool
) -> dict[Any, tuple[int, int]]:
    """Per group: (rungs where its mean was worse than ``lead``'s, rungs where both ran)."""
    means = present[[LEVEL + x for x in levels]].groupby(keys).mean()
    out = {}
    for value in means.index:
        worse = compared = 0
        for x in levels:
            a, b = means.at[lead, LEVEL + x], means.at[value, LEVEL + x]
            if not (math.isnan(a) or math.isnan(b)):
                compared += 1
                worse += int(b < a if maximize else b > a)
        out[value] = (worse, compared)
    return out


def _against_leader(
    groups: list[GroupStat],
    score: dict[Any, float],
    min_group: int,
    compare: Callable[[GroupStat, GroupStat], tuple[float, float | None]],
) -> dict[str, Any]:
    """The leading group (the best ``score`` among those with ``min_group`` trials, else among
    all) and each other group against it: ``compare(lead, other)`` -> (difference, p)."""
    powered = [g for g in groups if g.n >= min_group] or groups
    lead = max(powered, key=lambda g: score[g.value])
    pairs = [(g, *compare(lead, g)) for g in groups if g.value != lead.value]
    return {"score": score, "lead": lead, "pairs": pairs}


def _marginal(
    kind: Kind,
    param: Any,
    keys: pd.Series,
    target: pd.Series,
    groups: list[GroupStat],
    maximize: bool,
    min_group: int,
) -> dict[str, Any]:
    """Tests on this parameter alone: when the additive model cannot be fitted."""
    sign = 1.0 if maximize else -1.0
    found: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input and the like: p is then nan -> None
        if kind in ("numeric", "ordinal"):
            found.update(test="spearman", p=stats.spearmanr(keys.astype(float), target)[1])
        elif len(groups) == 2:
            a = target[keys == groups[0].value]
            found.update(
                test="mann-whitney",
                p=stats.mannwhitneyu(a, target.drop(a.index), alternative="two-sided")[1],
            )
        else:
            samples = [target[keys == g.value] for g in groups]
            found.update(test="kruskal-wallis", p=stats.kruskal(*samples)[1])
    if kind == "numeric":
        fit = fit_shape(
            units(param, keys.to_numpy(dtype=float)), target.to_numpy(), maximize=maximize
        )
        if fit is not None:
            found.update(
                difference=fit.difference,
                p_quadratic=fit.p_quadratic,
                peak=fit.peak,
                curve=fit.curve,
            )
        return found

    def compare(lead: GroupStat, g: GroupStat) -> tuple[float, float | None]:
        p = found["p"] if len(groups) == 2 else None  # two groups: the main test is the pair's
        if len(groups) > 2 and lead.n >= 2 and g.n >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = stats.mannwhitneyu(
                    target[keys == lead.value], target[keys == g.value], alternative="two-sided"
                )[1]
        return lead.mean - g.mean, p

    found.update(
        _against_leader(groups, {g.value: sign * g.mean for g in groups}, min_group, compare)
    )
    return found


def _modelled(
    model: AdditiveModel,
    name: str,
    kind: Kind,
    groups: list[GroupStat],
    maximize: bool,
    min_group: int,
) -> dict[str, Any]:
    """Tests of this parameter in the additive model (the others held fixed)."""
    columns = model.columns[name]
    sign = 1.0 if maximize else -1.0
    if kind == "numeric":
        slope, p = model.test(model.unit(columns[0]))
        found: dict[str, Any] = {"test": "slope", "p": p, "slope": slope}
        c = 0.0
        if len(columns) > 1:
            c, found["p_quadratic"] = model.test(model.unit(columns[1]))
            cov = model.cov[np.ix_(columns, columns)]
            found["peak"] = peak_of(
                slope, c, cov, model.dof, maximize=maximize, shift=model.centre[name]
            )
        if found.get("peak") is None:
            c = 0.0
        best, worst = span_of(slope, c, maximize=maximize, shift=model.centre[name])
        found["difference"] = best - worst
        found["curve"] = (slope, c, model.centre[name])
        return found
    found = {"test": "anova", "p": model.joint(columns)}
    score = {g.value: sign * float(model.effect_of(name, g.value) @ model.beta) for g in groups}

    def compare(lead: GroupStat, g: GroupStat) -> tuple[float, float | None]:
        difference, p = model.test(
            model.effect_of(name, lead.value) - model.effect_of(name, g.value)
        )
        return difference, p if len(groups) > 2 else found["p"]

    found.update(_against_leader(groups, score, min_group, compare))
    return found


def _effect(
    table: TrialsTable,
    name: str,
    view: RungView,
    min_group: int,
    models: dict[str, AdditiveModel | None],
    scale: float | None,
) -> ParamEffect:
    kind = param_kind(table, name)
    param = table.spec.param_ranges[name]
    column = table.param(name)
    present = view.frame[view.frame[column].notna()]
    levels = view.levels

    def fits(level: str) -> bool:
        if level not in models:
            models[level] = fit_additive(table, view.frame, level)
        model = models[level]
        return model is not None and name in model.columns

    level, powered = _judging_level(present, column, kind, levels, min_group, fits)
    at = present[present[LEVEL + level].notna()]
    values, target = at[column], at[LEVEL + level].astype(float)
    maximize = table.spec.direction == "maximize"
    n, n_distinct = len(values), int(values.nunique())
    where: dict[str, Any] = {"rung": level, "n_pruned": int((at["state"] == "PRUNED").sum())}
    numeric = kind == "numeric"
    keys = values if numeric else _coerced(values, param)
    groups = [] if numeric else _groups(values, target, maximize, param)
    # fewer trials than this make a p-value of nothing (rho=1 on 3 trials has p=0)
    if n < MIN_TRIALS or n_distinct < 2 or (groups and sum(g.n >= 2 for g in groups) < 2):
        where["underpowered"] = True
        return ParamEffect(name, kind, n, n_distinct, "none", None, None, groups=groups, **where)
    adjusted = fits(level)
    model = models[level]
    if model is not None and adjusted:
        found = _modelled(model, name, kind, groups, maximize, min_group)
    else:
        found = _marginal(kind, param, keys, target, groups, maximize, min_group)
    # relative to the completed trials' mean: early rungs sit lower, and the same difference
    # there would read as a larger share
    base = scale or abs(float(target.mean())) or 1.0
    rho = None
    if kind in ("numeric", "ordinal"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = _finite(stats.spearmanr(values.astype(float), target)[0])
    p = _finite(found["p"])
    fields: dict[str, Any] = {"adjusted": adjusted, **where}
    if numeric:
        slope = found.get("slope", rho)
        if slope:
            fields["direction"] = "increase" if (slope > 0) == maximize else "decrease"
        if found.get("difference") is not None:
            fields["difference"] = found["difference"]
            fields["relative_difference"] = abs(found["difference"]) / base
        fields["p_quadratic"] = _finite(found.get("p_quadratic"))
        if found.get("peak") is not None:
            vertex, low, high = (from_units(param, x) for x in found["peak"])
            fields.update(peak=vertex, peak_low=low, peak_high=high, curve=found["curve"])
    else:
        if kind == "ordinal" and rho:
            fields["direction"] = "increase" if (rho > 0) == maximize else "decrease"
        score, lead = found["score"], found["lead"]
        ranked = sorted(groups, key=lambda g: score[g.value], reverse=True)
        best, worst = ranked[0], ranked[-1]
        difference = (score[best.value] - score[worst.value]) * (1.0 if maximize else -1.0)
        worse_at = _worse_at(
            present, _coerced(present[column], param), levels, lead.value, maximize
        )
        fields.update(
            best_value=best.value,
            worst_value=worst.value,
            difference=difference,
            relative_difference=abs(difference) / base,
            pairs=[
                PairTest(
                    lead.value,
                    g.value,
                    _finite(pair_p),
                    None,
                    lead.n,
                    g.n,
                    abs(diff) / base,
                    level,
                    *worse_at.get(g.value, (0, 0)),
                    difference=diff,
                )
                for g, diff, pair_p in found["pairs"]
            ],
        )
    return ParamEffect(
        name,
        kind,
        n,
        n_distinct,
        test=found["test"],
        statistic=rho,
        p=p,
        groups=groups,
        underpowered=not powered,
        **fields,
    )


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def directionality(
    table: TrialsTable, *, min_group_trials: int = 5, rungs: RungView | None = None
) -> list[ParamEffect]:
    """One :class:`ParamEffect` per searched parameter, strongest evidence first, every p-value
    adjusted in one Benjamini-Hochberg family. ``rungs``: the study's rung view (without it,
    the completed trials' final values only)."""
    view = rungs if rungs is not None else rung_view(table)
    models: dict[str, AdditiveModel | None] = {}  # fitted once per level
    final = view.frame[LEVEL + FINAL].dropna()
    scale = abs(float(final.mean())) if len(final) else None
    effects = [
        _effect(table, name, view, min_group_trials, models, scale)
        for name in table.spec.param_ranges
    ]
    return sorted(
        _adjust(effects), key=lambda e: (e.p is None, e.p if e.p is not None else 1.0, e.name)
    )


def _adjust(effects: list[ParamEffect]) -> list[ParamEffect]:
    """Benjamini-Hochberg over every p-value of every effect, written back in place."""
    raw: list[float] = []
    for e in effects:
        raw += [p for p in (e.p, e.p_quadratic) if p is not None]
        raw += [t.p for t in e.pairs if t.p is not None and len(e.pairs) > 1]
    adjusted = iter(stats.false_discovery_control(raw, method="bh") if raw else [])
    out = []
    for e in effects:
        main = float(next(adjusted)) if e.p is not None else None
        quad = float(next(adjusted)) if e.p_quadratic is not None else None
        pairs = [
            replace(t, p_adjusted=main)
            if len(e.pairs) == 1
            else replace(t, p_adjusted=float(next(adjusted)) if t.p is not None else None)
            for t in e.pairs
        ]
        size = abs(e.difference or 0.0) or abs(e.statistic or 0.0)
        out.append(
            replace(
                e,
                p_adjusted=main,
                p_quadratic_adjusted=quad,
                pairs=pairs,
                strength=_strength(main, size),
            )
        )
    return out


def hypothesis_tests(effects: list[ParamEffect]) -> list[HypothesisTest]:
    """Every test behind ``effects``, in the order of the family, for the report."""
    out = []
    for e in effects:
        if e.p is not None and e.p_adjusted is not None:
            claim = {
                "slope": "trend (slope mid-range, others held fixed)",
                "anova": "some choice differs (others held fixed)",
                "spearman": "monotone trend",
                "mann-whitney": "two groups differ",
                "kruskal-wallis": "some choice differs",
            }.get(e.test, e.test)
            out.append(HypothesisTest(e.name, e.test, claim, e.rung, e.n, e.p, e.p_adjusted))
        if e.p_quadratic is not None and e.p_quadratic_adjusted is not None:
            claim = "curvature" + (" (peak inside the range)" if e.peak is not None else "")
            out.append(
                HypothesisTest(
                    e.name, "quadratic", claim, e.rung, e.n, e.p_quadratic, e.p_quadratic_adjusted
                )
            )
        for t in e.pairs if len(e.pairs) > 1 else []:
            if t.p is not None and t.p_adjusted is not None:
                out.append(
                    HypothesisTest(
                        e.name,
                        "contrast" if e.adjusted else "mann-whitney",
                        f"{t.leader!r} vs {t.other!r}",
                        t.rung,
                        t.n_leader + t.n_other,
                        t.p,
                        t.p_adjusted,
                    )
                )
    return out

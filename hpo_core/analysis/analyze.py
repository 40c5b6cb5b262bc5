"""One call that reads a study and returns every finding as typed results."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from hpo_core.analysis.decide import Decision, decide
from hpo_core.analysis.effects import (
    HypothesisTest,
    ParamEffect,
    directionality,
    hypothesis_tests,
)
from hpo_core.analysis.elites import Elites, elite_analysis
from hpo_core.analysis.flags import (
    Gap,
    RedFlag,
    SupplementaryTrial,
    find_gaps,
    red_flags,
    supplementary_trials,
)
from hpo_core.analysis.groups import GroupComparison, compare_groups
from hpo_core.analysis.importance import (
    Method,
    importance_level,
    level_study,
    param_importance,
)
from hpo_core.analysis.noise import (
    ATTR_CHAMPION_NOISE,
    NoiseEstimate,
    collapse_repeats,
    effect_sizes,
    estimate_noise,
)
from hpo_core.analysis.rungs import FINAL, RungView, Survival, rung_view, survival
from hpo_core.analysis.trials import SweepSummary, TrialsTable, build_trials_table
from hpo_core.spec import SweepSpec

__all__ = ["SweepAnalysis", "analyze_study"]

_log = logging.getLogger(__name__)


@dataclass
class SweepAnalysis:
    table: TrialsTable
    effects: list[ParamEffect]
    importance: dict[str, float]
    importance_method: str
    elites: Elites
    flags: list[RedFlag]
    gaps: list[Gap]
    supplementary: list[SupplementaryTrial]
    decision: Decision
    groups: list[GroupComparison] = field(default_factory=list)  # analysis.compare, e.g. budgets
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    rungs: RungView | None = None  # every trial's value at every rung it reached
    survival: list[Survival] = field(default_factory=list)  # how far each arm got (if pruned)
    importance_rung: str = FINAL  # the level importance was computed at
    noise: NoiseEstimate | None = None  # the objective's seed noise, if measured or given

    @property
    def spec(self) -> SweepSpec:
        return self.table.spec

    @property
    def summary(self) -> SweepSummary:
        return self.table.summary

    def effect(self, name: str) -> ParamEffect:
        return next(e for e in self.effects if e.name == name)

    @property
    def tests(self) -> list[HypothesisTest]:
        """Every test of the analysis, with its Benjamini-Hochberg adjusted p-value."""
        return hypothesis_tests(self.effects)


def analyze_study(
    study: optuna.Study,
    spec: SweepSpec,
    *,
    n_trials: int | None = None,
    importance: Method | None = None,
    on_step: Callable[[str], None] | None = None,
) -> SweepAnalysis:
    """Analyse ``study`` under ``spec`` (the spec stored with it). ``on_step(name)`` is called
    before each step, for progress display on large studies."""
    cfg = spec.analysis
    timings: dict[str, float] = {}

    def step(name: str) -> float:
        if on_step is not None:
            on_step(name)
        return time.perf_counter()

    t = step("trials")
    trials = study.get_trials(deepcopy=False)
    table = build_trials_table(trials, spec, n_trials=n_trials)
    noise = estimate_noise(table, champions=study.user_attrs.get(ATTR_CHAMPION_NOISE))
    # the tests see a configuration run again with other seeds once, with its mean
    full, table = table, collapse_repeats(table)
    timings["trials"] = time.perf_counter() - t
    t = step("directionality")
    view = rung_view(table, trials)
    effects = directionality(table, min_group_trials=cfg.min_group_trials, rungs=view)
    survivals = survival(view, table)
    timings["directionality"] = time.perf_counter() - t
    method = importance or cfg.importance
    t = step(f"importance ({method})")
    importance_rung = importance_level(view, 2 * cfg.min_group_trials)
    source = study
    if importance_rung != FINAL:
        source = level_study(spec.direction, view, importance_rung, trials)
    importances = param_importance(source, method)
    timings["importance"] = time.perf_counter() - t
    t = step("elites")
    elites = elite_analysis(
        table,
        quantile=cfg.elite_quantile,
        boundary_fraction=cfg.boundary_fraction,
        min_group_trials=cfg.min_group_trials,
        effects=effects,
    )
    timings["elites"] = time.perf_counter() - t
    t = step("flags and gaps")
    flags = red_flags(
        table,
        elites,
        effects,
        max_failure_rate=spec.decision.max_failure_rate,
        chance_headroom_flag=cfg.chance_headroom_flag,
    )
    gaps = find_gaps(table, elites)
    supplementary = supplementary_trials(table, gaps)
    decision = decide(full)
    timings["flags"] = time.perf_counter() - t
    groups: list[GroupComparison] = []
    if cfg.compare:
        t = step("groups")
        groups = compare_groups(
            table,
            effects,
            params=cfg.compare,
            metrics=spec.metrics.ordered(list(spec.metrics.priority)),
            min_group_trials=cfg.min_group_trials,
        )
        timings["groups"] = time.perf_counter() - t
    if noise is not None:
        noise = dataclasses.replace(noise, effects=effect_sizes(table, effects))
    _log.debug("analysis timings: %s", timings)
    return SweepAnalysis(
        table=full,
        effects=effects,
        importance=importances,
        importance_method=method,
        elites=elites,
        flags=flags,
        gaps=gaps,
        supplementary=supplementary,
        decision=decision,
        groups=groups,
        timings=timings,
        noise=noise,
        rungs=view,
        survival=survivals,
        importance_rung=importance_rung,
    )

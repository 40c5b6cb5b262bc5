"""Red flags (seed 000) and gaps in the explored space (seed 004), with supplementary trials."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hpo_core.analysis.effects import ParamEffect
from hpo_core.analysis.elites import Elites
from hpo_core.analysis.trials import TrialsTable, coerce_value

__all__ = ["Gap", "RedFlag", "SupplementaryTrial", "find_gaps", "red_flags", "supplementary_trials"]


@dataclass(frozen=True)
class RedFlag:
    kind: Literal[
        "boundary_hit",
        "arm_without_elite",
        "near_chance",
        "failure_rate",
        "never_varied",
        "few_trials",
    ]
    param: str | None
    message: str
    action: str


@dataclass(frozen=True)
class Gap:
    param: str
    kind: Literal["untried_values", "untried_stretch"]
    values: list[Any] = field(default_factory=list)  # untried ints/choices
    low: float | None = None  # an untried stretch inside the elite region
    high: float | None = None
    width: float | None = None  # share of the parameter's range (log space for log params)


@dataclass(frozen=True)
class SupplementaryTrial:
    params: dict[str, Any]  # the best trial's parameters with one value changed
    reason: str


def red_flags(
    table: TrialsTable,
    elites: Elites,
    effects: list[ParamEffect],
    *,
    max_failure_rate: float,
    chance_headroom_flag: float,
) -> list[RedFlag]:
    flags: list[RedFlag] = []
    s = table.summary
    by_name = {e.name: e for e in effects}
    for p in elites.params.values():
        if p.hit:
            param = table.spec.param_ranges[p.name]
            bound = param.high if p.hit == "high" else param.low
            share = p.share_at_high if p.hit == "high" else p.share_at_low
            base = p.trials_at_high if p.hit == "high" else p.trials_at_low
            e = by_name.get(p.name)
            trend = f"rho={e.rho:+.2f}, p_adj={e.p_adjusted:.3g}; " if e and e.rho else ""
            flags.append(
                RedFlag(
                    "boundary_hit",
                    p.name,
                    f"{p.name}: better toward the {p.hit} bound ({bound:g}) with no optimum "
                    f"inside the range ({trend}{share:.0%} of elites within "
                    f"{table.spec.analysis.boundary_fraction:.0%} of it, {base or 0:.0%} of "
                    f"trials); elite span {p.low:g}-{p.high:g}",
                    f"expand the {p.hit} bound of {p.name}",
                )
            )
    for arm in elites.arms:
        switch = by_name.get(arm.switch)
        pairs = {t.other: t for t in switch.pairs} if switch is not None else {}
        for a in arm.arms:
            if a.elites == 0 and elites.numbers:
                pair = pairs.get(a.value)
                judged = ""
                if pair is not None and pair.p_adjusted is not None:
                    judged = (
                        f"; against {pair.leader!r} at {pair.rung}: {pair.relative or 0:.1%} "
                        f"worse, p_adj={pair.p_adjusted:.3g}, n={pair.n_other}"
                        + (
                            f", worse at every rung it reached ({pair.compared_at} rungs)"
                            if pair.worse_everywhere
                            else ""
                        )
                    )
                flags.append(
                    RedFlag(
                        "arm_without_elite",
                        arm.switch,
                        f"{arm.switch}={a.value!r}: no trial in the top {elites.quantile:.0%} "
                        f"({a.trials} completed, {a.pruned} pruned"
                        + (f", mean {a.mean:.4g}" if a.mean is not None else "")
                        + ")"
                        + judged,
                        "check that arm separately, or lower its weight keeping a floor"
                        if not a.underpowered
                        else "give it more trials before judging it",
                    )
                )
    if (
        s.chance_level is not None
        and s.best_value is not None
        and s.direction == "maximize"
        and s.chance_level < 1
    ):
        headroom = (s.best_value - s.chance_level) / (1 - s.chance_level)
        if headroom < chance_headroom_flag:
            flags.append(
                RedFlag(
                    "near_chance",
                    None,
                    f"best {s.metric} {s.best_value:.4g} is close to chance ({s.chance_level:.4g}) "
                    f"({headroom:.0%} of the way from chance to perfect)",
                    "check that the task is learnable before more tuning",
                )
            )
    if s.failure_rate > max_failure_rate:
        flags.append(
            RedFlag(
                "failure_rate",
                None,
                f"{s.failed} failed trials ({s.failure_rate:.0%}) exceed the limit of "
                f"{max_failure_rate:.0%}",
                "read fail_reason of the failed trials (hpo status / trials.csv)",
            )
        )
    for p in elites.params.values():
        if p.n_values_tried == 1:
            flags.append(
                RedFlag(
                    "never_varied",
                    p.name,
                    f"{p.name} was searched but every trial that ran it used one value",
                    "check its range and conditions, or move it to fixed",
                )
            )
    done = s.complete
    if 0 < done < 10:
        flags.append(
            RedFlag(
                "few_trials",
                None,
                f"only {done} completed trials: every finding is tentative",
                "let the sweep run longer before refining",
            )
        )
    return flags


def find_gaps(table: TrialsTable, elites: Elites, *, top: int = 2) -> list[Gap]:
    """Values never tried, and the widest untried stretches of each float's elite region."""
    gaps: list[Gap] = []
    frame = table.frame[table.frame["state"].isin(["COMPLETE", "PRUNED", "RUNNING", "FAIL"])]
    for name, param in table.spec.param_ranges.items():
        tried = frame[table.param(name)].dropna()
        if param.type in ("categorical", "bool"):
            options = param.choices if param.type == "categorical" else [True, False]
            seen = set(tried.tolist())
            missing = [c for c in options or [] if c not in seen]
            if missing and len(tried):
                gaps.append(Gap(name, "untried_values", values=missing))
        elif param.type == "int":
            assert param.low is not None and param.high is not None
            step = int(param.step or 1)
            everything = range(int(param.low), int(param.high) + 1, step)
            if len(everything) <= 64 and len(tried):
                seen = {int(v) for v in tried}
                missing = [v for v in everything if v not in seen]
                if missing:
                    gaps.append(Gap(name, "untried_values", values=missing))
        else:
            ep = elites.params.get(name)
            if ep is None or ep.low is None or ep.high is None or ep.low == ep.high:
                continue
            values = sorted(v for v in tried.astype(float) if ep.low <= v <= ep.high)
            if len(values) < 2:
                continue
            log = bool(param.log)
            xs = np.log(values) if log else np.array(values)
            assert param.low is not None and param.high is not None
            span = (math.log(param.high) - math.log(param.low)) if log else param.high - param.low
            widths = np.diff(xs)
            for i in np.argsort(widths)[::-1][:top]:
                if widths[i] <= 0:
                    continue
                gaps.append(
                    Gap(
                        name,
                        "untried_stretch",
                        low=float(values[i]),
                        high=float(values[i + 1]),
                        width=float(widths[i] / span) if span else None,
                    )
                )
    return gaps


def supplementary_trials(
    table: TrialsTable, gaps: list[Gap], *, limit: int = 6
) -> list[SupplementaryTrial]:
    """Targeted trials: the best trial's parameters with one gap filled (seed 004's idea)."""
    done = table.complete
    if done.empty:
        return []
    best = done.iloc[0]
    base = {
        name: coerce_value(param, best[table.param(name)])
        for name, param in table.spec.param_ranges.items()
        if coerce_value(param, best[table.param(name)]) is not None
    }
    switches = {parent for p in table.spec.param_ranges.values() for parent in p.when or {}}
    proposals: list[SupplementaryTrial] = []
    for gap in gaps:
        if gap.param not in base or gap.param in switches:
            continue  # not in the best trial's arm, or a switch (its dependents would be unset)
        if gap.kind == "untried_values":
            for untried in gap.values[:2]:
                proposals.append(
                    SupplementaryTrial(
                        {**base, gap.param: untried},
                        f"{gap.param}={untried!r} never tried; the best trial "
                        f"#{int(best['number'])} with it",
                    )
                )
        elif gap.low is not None and gap.high is not None:
            param = table.spec.param_ranges[gap.param]
            mid = math.sqrt(gap.low * gap.high) if param.log else (gap.low + gap.high) / 2
            value: Any = round(mid, 6) if param.type == "float" else round(mid)
            proposals.append(
                SupplementaryTrial(
                    {**base, gap.param: value},
                    f"{gap.param} untried from {gap.low:.4g} to {gap.high:.4g} in the elite "
                    f"range; best trial #{int(best['number'])} at its middle",
                )
            )
        if len(proposals) >= limit:
            break
    return proposals[:limit]

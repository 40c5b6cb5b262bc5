"""The next search space from the evidence of a sweep: conservative, explainable rules.

Every parameter of the old space gets exactly one rule, and its note says the rule that fired and
the numbers behind it, or the rule that kept the parameter as it was (seed 001's design). Every
fix, drop, narrowing and expansion rests on a test of the analysis (:mod:`hpo_core.analysis`,
judged at the deepest rung with enough trials, pruned ones included) and must pass every gate of
:func:`_kept_by`: its Benjamini-Hochberg adjusted p-value (q, over all the tests of the analysis)
below the rule's threshold, a relative effect of at least ``min_effect`` (5%), and at least
``min_arm_trials`` trials in each group (twice that for a numeric parameter).

- ``fix``: a categorical/boolean whose every other choice is dropped (below; and the elites agree,
  ``fix_min_convergence``), with ``fix_max_p`` and ``max(min_effect, fix_min_effect)``. A numeric
  parameter that is better toward a bound that is also a hard limit (label smoothing at 0) is
  fixed at that bound under the same gates.
- ``drop_choice``: a choice worse than the leading one (pairwise Mann-Whitney, ``fix_max_p``),
  by at least ``min_effect``, with no elite. A weighted near tie is never dropped.
- ``expand``: a numeric parameter better toward a bound with no optimum inside the range (a
  boundary hit, :mod:`hpo_core.analysis.elites`; its trend's q below ``expand_max_p``) grows
  there by ``expand_factor`` x the range, by at most one step (a decade for a log parameter, one
  range width otherwise), never past a hard limit (the spec's ``refine.hard_limits``, the
  objective's own limits, positivity of log ranges, integer bounds for ints).
- ``narrow``: an interior optimum (a peak whose quadratic term passes ``narrow_max_p``) narrows
  to its interval and the elite span, plus ``narrow_margin`` x that span on each side; a trend
  without a boundary hit narrows to the elite span. Never when the new range would keep 90% of
  the old one. A parameter with a peak inside its range is never expanded.
- ``reweight``: a categorical switch (a parameter others depend on) gets weights proportional to
  the elite share of each arm, each at least ``arm_floor``, so the weaker arm still gets a fair
  trial; kept as it is when the arm comparison is underpowered.
- ``keep``: everything else; the note says which gate kept it.

Fixing a switch removes the dependents of the other arms (``drop``) and the condition from the
dependents of the kept arm. The suggested ``n_trials`` is ``trials_per_param`` per searched
parameter, rounded up to 10.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from hpo_core.analysis import ParamEffect, SweepAnalysis
from hpo_core.analysis.elites import EliteParam, to_unit
from hpo_core.objectives import objective_hard_limits
from hpo_core.spec import ParamSpec, SweepSpec, parse_spec

__all__ = ["Evidence", "RefineStep", "Refinement", "refine_spec"]


@dataclass(frozen=True)
class RefineStep:
    param: str
    rule: str  # fix | expand | narrow | reweight | drop_choice | drop | keep
    old: str  # the old space, as text
    new: str  # the new space, as text ("fixed: X" when fixed, "removed" when dropped)
    evidence: str  # the rule that fired (or kept it) and the figures behind it
    figures: dict[str, Any] = field(default_factory=dict)  # the deciding Evidence, as a dict


@dataclass
class Refinement:
    source_study: str
    spec: SweepSpec  # the next spec, validated
    text: str  # its YAML, with one comment per parameter
    steps: list[RefineStep]
    n_trials: int


def _space(p: dict[str, Any]) -> str:
    if p.get("type") in ("float", "int"):
        text = f"[{p['low']:g}, {p['high']:g}]" + (" log" if p.get("log") else "")
        return text + (f" step {p['step']:g}" if p.get("step") else "")
    if p.get("type") == "bool":
        return "true|false"
    text = "[" + ", ".join(str(c) for c in p.get("choices", [])) + "]"
    if p.get("weights"):
        text += " weights [" + ", ".join(f"{w:g}" for w in p["weights"]) + "]"
    return text


def _fmt_p(p: float | None, name: str = "p") -> str:
    return f"{name}=n/a" if p is None else f"{name}={p:.3g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


@dataclass(frozen=True)
class Evidence:
    """The test behind one decision and the figures its gates read."""

    claim: str  # what it would establish, in words
    q: float | None  # its Benjamini-Hochberg adjusted p-value
    max_q: float  # the rule's threshold
    effect: float | None  # relative effect size
    difference: float | None  # the same in objective units
    n: int  # trials in its smallest group
    group: str  # that group, in words
    min_n: int  # trials a group needs
    rung: str  # the level it was judged at
    min_effect: float = 0.05  # the rule's minimum relative effect

    def figures(self) -> str:
        return (
            f"{_fmt_p(self.q, 'q')}, effect {_pct(self.effect)}, n={self.n} {self.group} "
            f"at {self.rung}"
        )


def _kept_by(ev: Evidence, a: SweepAnalysis) -> str | None:
    """Why ``ev`` is not enough to act on (the gate that keeps the parameter as it is), or None
    when every gate passes. Every fix, drop, narrowing and expansion goes through here."""
    if ev.n < ev.min_n:
        return (
            f"underpowered: {ev.n} trial{'' if ev.n == 1 else 's'} {ev.group} at {ev.rung} "
            f"(needs {ev.min_n}, refine.min_arm_trials)"
        )
    if ev.q is None:
        return f"no test of {ev.claim}"
    if ev.q >= ev.max_q:
        return f"q={ev.q:.3g} over {ev.max_q:g} for {ev.claim}"
    if ev.effect is None or ev.effect < ev.min_effect:
        return f"effect {_pct(ev.effect)} under min_effect {ev.min_effect:.0%} for {ev.claim}"
    noise = a.noise
    if noise is not None and noise.within_noise(ev.difference):
        assert ev.difference is not None
        return (
            f"within noise: {abs(ev.difference):.3g} is under the seed noise sd {noise.sd:.3g} "
            f"({noise.source}) for {ev.claim}"
        )
    return None


def _evidence(e: ParamEffect, ep: EliteParam | None) -> str:
    parts = []
    if e.test == "spearman" and e.rho is not None:
        parts.append(f"rho={e.rho:+.2f} {_fmt_p(e.p)} {_fmt_p(e.p_adjusted, 'q')}")
    elif e.test != "none":
        parts.append(f"{e.test} {_fmt_p(e.p)} {_fmt_p(e.p_adjusted, 'q')}")
        if e.best_value is not None and e.relative_difference is not None:
            parts.append(f"best {e.best_value!r} by {e.relative_difference:+.1%}")
    if e.p_quadratic is not None:
        parts.append(f"quadratic {_fmt_p(e.p_quadratic_adjusted, 'q')}")
    if ep is not None and ep.convergence is not None:
        parts.append(f"elites {ep.convergence:.0%} {ep.top_value!r}")
    if ep is not None and ep.low is not None and ep.high is not None:
        parts.append(f"elites {ep.low:.4g}-{ep.high:.4g}")
    pruned = f", {e.n_pruned} pruned" if e.n_pruned else ""
    parts.append(f"n={e.n}{pruned} at {e.rung}" + (" underpowered" if e.underpowered else ""))
    return ", ".join(parts)


def _limits(spec: SweepSpec, name: str, p: ParamSpec) -> tuple[float | None, float | None]:
    low, high = objective_hard_limits(spec.objective).get(name, (None, None))
    user = spec.refine.hard_limits.get(name)
    if user is not None:
        low = user.low if user.low is not None else low
        high = user.high if user.high is not None else high
    if p.log:
        tiny = 1e-12 if p.type == "float" else 1
        low = max(low, tiny) if low is not None else tiny
    if p.type == "int":
        low = math.ceil(low) if low is not None else None
        high = math.floor(high) if high is not None else None
    return low, high


def _to_space(p: ParamSpec, x: float) -> float:
    return math.log(x) if p.log else x


def _from_space(p: ParamSpec, x: float) -> float:
    return math.exp(x) if p.log else x


def _nice(
    p: ParamSpec, x: float, *, outward: str | None = None, limit: float | None = None
) -> float | int:
    """``x`` with 3 significant digits (ints: whole), rounded outward for a bound ("low" down,
    "high" up) so that a range never shrinks by rounding, but never past ``limit`` (a hard
    limit, or the old bound when narrowing): there the exact value is kept."""
    if p.type == "int":
        if outward == "low":
            value: float = math.floor(x + 1e-9)
        elif outward == "high":
            value = math.ceil(x - 1e-9)
        else:
            return round(x)
    else:
        value = float(f"{x:.3g}")
        close = math.isclose(value, x, rel_tol=1e-9)  # 0.1 * 10 ** 0.0 is 0.10000000000000002
        if not close and ((outward == "high" and value < x) or (outward == "low" and value > x)):
            scale = 10.0 ** (math.floor(math.log10(abs(x))) - 2)
            step = math.ceil if outward == "high" else math.floor
            value = float(f"{step(x / scale) * scale:.3g}")
            if (outward == "high" and value < x) or (outward == "low" and value > x):
                value = x  # the 3-digit grid cannot hold it outward: keep it exact
    if limit is not None and (
        (outward == "high" and value > limit) or (outward == "low" and value < limit)
    ):
        value = limit
    return int(value) if p.type == "int" else value


Decided = tuple[str, dict[str, Any] | None, Any, str, Evidence | None]
"""(rule, new param dict or None when fixed, fixed value, note, the deciding evidence)."""


def _narrowed(
    p: ParamSpec, lo: float, hi: float, e_lo: float, e_hi: float, margin: float
) -> tuple[dict[str, Any] | None, str]:
    """The range [e_lo, e_hi] (in the parameter's space) plus ``margin`` x its width each side,
    inside the old [lo, hi]; None and why when that is not a narrowing worth making."""
    span = hi - lo
    pad = max(margin * (e_hi - e_lo), 0.05 * span)
    new_lo, new_hi = max(lo, e_lo - pad), min(hi, e_hi + pad)
    if new_hi - new_lo >= 0.9 * span:
        return None, f"the narrowed range would keep {(new_hi - new_lo) / span:.0%} of the old one"
    assert p.low is not None and p.high is not None
    d = _param_dict(p)
    d["low"] = max(_nice(p, _from_space(p, new_lo), outward="low", limit=p.low), p.low)
    d["high"] = min(_nice(p, _from_space(p, new_hi), outward="high", limit=p.high), p.high)
    if d["low"] >= d["high"]:
        return None, "the narrowed range would be empty at the parameter's resolution"
    if p.type == "float":
        d.pop("step", None)
    return d, ""


def _expanded(p: ParamSpec, side: str, spec: SweepSpec, name: str) -> tuple[dict[str, Any], str]:
    """The range grown at ``side`` by ``expand_factor`` x the range, at most one step (a decade
    for log, one range width otherwise), never past a hard limit."""
    assert p.low is not None and p.high is not None
    r = spec.refine
    d = _param_dict(p)
    lo, hi = _to_space(p, p.low), _to_space(p, p.high)
    step = math.log(10.0) if p.log else hi - lo
    grow = min(r.expand_factor * (hi - lo), step)
    hard_low, hard_high = _limits(spec, name, p)
    if side == "high":
        new = _from_space(p, hi + grow)
        new = min(new, hard_high) if hard_high is not None else new
        d["high"] = max(_nice(p, new, outward="high", limit=hard_high), p.high)
    else:
        new = _from_space(p, lo - grow)
        new = max(new, hard_low) if hard_low is not None else new
        d["low"] = min(_nice(p, new, outward="low", limit=hard_low), p.low)
    if p.type == "int" and p.step:
        d["high"] = d["low"] + ((d["high"] - d["low"]) // p.step) * p.step
    if p.step and p.type == "float":
        d.pop("step", None)
    how = (
        "a decade"
        if p.log and grow == step
        else "one range width"
        if grow == step
        else (f"{r.expand_factor:g} x the range")
    )
    return d, how


def _near_peak(p: ParamSpec, e: ParamEffect, tolerance: float) -> tuple[float, float]:
    """The positions in the range (0 to 1) where the fitted curve of ``e``'s peak stays within
    ``tolerance`` (relative to the mean objective) of the peak, and the peak's interval."""
    assert e.curve is not None and e.peak_low is not None and e.peak_high is not None
    assert e.difference is not None and e.relative_difference
    b, c, shift = e.curve
    vertex = -b / (2 * c) + shift
    half = math.sqrt(tolerance * abs(e.difference) / e.relative_difference / abs(c))
    low = min(vertex - half, to_unit(p, e.peak_low))
    high = max(vertex + half, to_unit(p, e.peak_high))
    return max(0.0, low), min(1.0, high)


def _numeric(name: str, p: ParamSpec, e: ParamEffect, ep: EliteParam, a: SweepAnalysis) -> Decided:
    spec, r = a.spec, a.spec.refine
    d = _param_dict(p)
    assert p.low is not None and p.high is not None
    lo, hi = _to_space(p, p.low), _to_space(p, p.high)
    base = Evidence(
        "a trend",
        e.p_adjusted,
        r.narrow_max_p,
        e.relative_difference,
        e.difference,
        e.n,
        f"with {name}",
        2 * r.min_arm_trials,
        e.rung,
        r.min_effect,
    )
    if e.peak is not None:  # an optimum inside the range: never expanded
        peak = f"peak near {e.peak:.3g} ({e.peak_low:.3g}-{e.peak_high:.3g})"
        ev = replace(base, claim=peak, q=e.p_quadratic_adjusted)
        why = _kept_by(ev, a)
        if why is not None:
            return "keep", d, None, f"kept: {why}; a peak inside the range is never expanded", ev
        u_lo, u_hi = _near_peak(p, e, r.min_effect)
        new, why = _narrowed(
            p, lo, hi, lo + u_lo * (hi - lo), lo + u_hi * (hi - lo), r.narrow_margin
        )
        if new is None:
            return "keep", d, None, f"kept: {why}; {peak}, never expanded", ev
        return (
            "narrow",
            new,
            None,
            f"narrowed around the {peak}, to where the fitted curve stays within "
            f"{r.min_effect:.0%} of it: {ev.figures()}",
            ev,
        )
    if ep.hit is not None:
        bound = p.high if ep.hit == "high" else p.low
        hard_low, hard_high = _limits(spec, name, p)
        hard = hard_high if ep.hit == "high" else hard_low
        toward = f"better toward the {ep.hit} bound ({bound:g}), no optimum inside"
        if hard is not None and (bound >= hard if ep.hit == "high" else bound <= hard):
            ev = replace(
                base,
                claim=toward,
                max_q=r.fix_max_p,
                min_effect=max(r.min_effect, r.fix_min_effect),
            )
            why = _kept_by(ev, a)
            if why is not None:
                return "keep", d, None, f"kept: {why}; the {ep.hit} bound is a hard limit", ev
            value = int(bound) if p.type == "int" else bound
            return "fix", None, value, f"{toward}, a hard limit: fixed there; {ev.figures()}", ev
        ev = replace(base, claim=toward, max_q=r.expand_max_p)
        why = _kept_by(ev, a)
        if why is not None:
            return "keep", d, None, f"kept: {why}", ev
        new, how = _expanded(p, ep.hit, spec, name)
        return (
            "expand",
            new,
            None,
            f"{toward}: the {ep.hit} bound grows by {how} ({ep.elites_at_hit} elites within "
            f"{spec.analysis.boundary_fraction:.0%} of it); {ev.figures()}",
            ev,
        )
    ev = replace(base, claim=f"a trend ({e.direction or 'none'})")
    why = _kept_by(ev, a)
    if why is None and (ep.low is None or ep.high is None or ep.n_elites < 3):
        why = "fewer than 3 elites to narrow to"
    if why is not None:
        return "keep", d, None, f"kept: {why}", ev
    assert ep.low is not None and ep.high is not None
    # the bound the trend points at stays: the optimum is there or beyond
    up = e.direction == "increase"
    e_lo, e_hi = (_to_space(p, ep.low), hi) if up else (lo, _to_space(p, ep.high))
    new, why = _narrowed(p, lo, hi, e_lo, e_hi, r.narrow_margin)
    if new is None:
        return "keep", d, None, f"kept: {why}", ev
    moved = "low bound raised to" if up else "high bound lowered to"
    return (
        "narrow",
        new,
        None,
        f"{e.direction} trend: {moved} the elites (the other bound, where the trend points, "
        f"stays); {ev.figures()}",
        ev,
    )


def _discrete(
    name: str, p: ParamSpec, e: ParamEffect, ep: EliteParam, a: SweepAnalysis, switch: bool
) -> Decided:
    r = a.spec.refine
    d = _param_dict(p)
    verdicts: list[tuple[Any, Evidence, str | None]] = []
    for t in e.pairs:
        small = t.other if t.n_other <= t.n_leader else t.leader
        ev = Evidence(
            f"{t.other!r} worse than {t.leader!r}"
            + (f" at every rung it reached ({t.compared_at} rungs)" if t.worse_everywhere else ""),
            t.p_adjusted,
            r.fix_max_p,
            t.relative,
            t.difference,
            min(t.n_leader, t.n_other),
            f"in {small!r}",
            r.min_arm_trials,
            t.rung,
            r.min_effect,
        )
        verdicts.append((t.other, ev, _kept_by(ev, a)))
    dead = [other for other, _, why in verdicts if why is None]
    if verdicts and len(dead) == len(verdicts):
        leader = e.pairs[0].leader
        fix_effect = max(r.min_effect, r.fix_min_effect)
        weak = [ev for _, ev, _ in verdicts if (ev.effect or 0.0) < fix_effect]
        # fixing takes the choice away for good: the elites must agree too
        agree = ep.top_value == leader and (ep.convergence or 0.0) >= r.fix_min_convergence
        if not weak and agree and ep.n_elites >= 2:
            figures = "; ".join(f"{ev.claim}: {ev.figures()}" for _, ev, _ in verdicts)
            return "fix", None, leader, f"every other choice is worse: {figures}", verdicts[0][1]
    if switch and p.type == "categorical":
        arm = next((arm for arm in a.elites.arms if arm.switch == name), None)
        if arm is None or arm.underpowered or not a.elites.numbers:
            nearest = max(verdicts, key=lambda v: v[1].effect or 0.0) if verdicts else None
            reason = (nearest[2] if nearest else None) or "arm comparison underpowered"
            return "keep", d, None, f"kept: {reason}", nearest[1] if nearest else None
        shares = {s.value: s.elite_share for s in arm.arms}
        choices = list(p.choices or [])
        raw = [max(shares.get(c, 0.0), 1e-9) for c in choices]
        weights = _floor_weights([w / sum(raw) for w in raw], r.arm_floor)
        d["weights"] = [round(w, 3) for w in weights]
        total = sum(d["weights"])
        d["weights"][-1] = round(d["weights"][-1] + (1 - total), 3)
        return "reweight", d, None, f"weights toward the elite share, floor {r.arm_floor:.0%}", None
    keep = [c for c in p.choices or [] if c not in dead]
    if p.type == "categorical" and dead and keep:
        d["choices"] = keep
        if p.weights:
            weights = [w for c, w in zip(p.choices or [], p.weights, strict=True) if c in keep]
            d["weights"] = [round(w / sum(weights), 3) for w in weights]
        figures = "; ".join(f"{ev.claim}: {ev.figures()}" for o, ev, _ in verdicts if o in dead)
        if len(keep) == 1:
            return "fix", None, keep[0], f"every other choice is worse: {figures}", verdicts[0][1]
        return "drop_choice", d, None, f"dropped {figures}", verdicts[0][1]
    if not verdicts:
        return "keep", d, None, "kept: no two choices with trials to compare", None
    # the choice nearest to a drop: the largest effect
    _, ev, why = max(verdicts, key=lambda v: v[1].effect or 0.0)
    return "keep", d, None, f"kept: {why or 'the elites do not agree'}", ev


def _floor_weights(weights: list[float], floor: float) -> list[float]:
    """Weights at least ``floor`` each, proportional above it, summing to 1."""
    n = len(weights)
    floor = min(floor, 1.0 / n)
    out = list(weights)
    for _ in range(n):
        low = [i for i, w in enumerate(out) if w < floor]
        if not low:
            break
        rest = [i for i in range(n) if i not in low]
        free = 1.0 - floor * len(low)
        total = sum(out[i] for i in rest) or 1.0
        out = [floor if i in low else out[i] * free / total for i in range(n)]
    return out


def _next_name(name: str) -> str:
    match = re.search(r"_v(\d+)(\w*)$", name)
    if match:
        return f"{name[: match.start()]}_v{int(match.group(1)) + 1}_refined"
    return f"{name}_refined"


def refine_spec(analysis: SweepAnalysis, *, study_name: str | None = None) -> Refinement:
    """The next spec from a sweep's analysis; raises SpecError if it would not validate."""
    spec = analysis.spec
    switches = {parent for p in spec.param_ranges.values() for parent in p.when or {}}
    fixed: dict[str, Any] = dict(spec.fixed)
    ranges: dict[str, dict[str, Any]] = {}
    steps: list[RefineStep] = []
    for name, p in spec.param_ranges.items():
        e, ep = analysis.effect(name), analysis.elites.params[name]
        old = _param_dict(p)
        if p.type in ("float", "int"):
            rule, new, value, note, ev = _numeric(name, p, e, ep, analysis)
        else:
            rule, new, value, note, ev = _discrete(name, p, e, ep, analysis, name in switches)
        evidence = f"{note}; {_evidence(e, ep)}"
        figures = asdict(ev) if ev is not None else {}
        if rule == "fix":
            fixed[name] = value
            steps.append(
                RefineStep(name, rule, _space(old), f"fixed: {value!r}", evidence, figures)
            )
        else:
            assert new is not None
            ranges[name] = new
            steps.append(RefineStep(name, rule, _space(old), _space(new), evidence, figures))
    # a fixed switch: drop the other arms' dependents, unconditional for the kept arm
    for name in list(ranges):
        when = dict(ranges[name].get("when") or {})
        for parent, wanted in list(when.items()):
            if parent not in fixed or parent in spec.fixed:
                continue
            values = wanted if isinstance(wanted, list) else [wanted]
            if fixed[parent] in values:
                del when[parent]
            else:
                del ranges[name]
                step = next(s for s in steps if s.param == name)
                steps[steps.index(step)] = RefineStep(
                    name,
                    "drop",
                    step.old,
                    "removed",
                    f"only used when {parent} in {values!r}, and {parent} is fixed to "
                    f"{fixed[parent]!r}",
                )
                break
        else:
            if when:
                ranges[name]["when"] = when
            else:
                ranges[name].pop("when", None)
    n_searched = len(ranges)
    per = spec.refine.trials_per_param
    n_trials = max(20, int(math.ceil(per * max(1, n_searched) / 10.0) * 10))
    text = _render_yaml(
        spec, study_name or _next_name(spec.study_name), fixed, ranges, steps, n_trials, analysis
    )
    loaded = parse_spec(text, source="refined spec")
    from hpo_core.objectives import require_objective_spec

    require_objective_spec(loaded.spec, source="refined spec")
    return Refinement(spec.study_name, loaded.spec, text, steps, n_trials)


def _render_yaml(
    spec: SweepSpec,
    name: str,
    fixed: dict[str, Any],
    ranges: dict[str, dict[str, Any]],
    steps: list[RefineStep],
    n_trials: int,
    analysis: SweepAnalysis,
) -> str:
    s = analysis.summary
    best = "-" if s.best_value is None else f"{s.best_value:.4g}"
    head = {
        "study_name": name,
        "n_trials": n_trials,
        "direction": spec.direction,
        "objective": spec.objective,
        "metric": spec.metric,
        "description": f"Refined from {spec.study_name} by hpo refine",
        # the next study starts with this one's trials that fit its space (hpo_core.study.warm);
        # they do not count in n_trials. Remove it to start cold.
        "warm_start": {"study": spec.study_name},
    }
    rest = spec.model_dump(
        mode="json",
        exclude_unset=True,
        include={
            "sampler",
            "pruner",
            "data",
            "decision",
            "analysis",
            "refine",
            "champions",
            "metrics",
            "worker",
        },
    )
    compare = rest.get("analysis", {}).get("compare")
    if compare:  # a compared parameter the refinement fixed has no groups left
        rest["analysis"]["compare"] = [p for p in compare if p in ranges]
    checkpoints = rest.get("decision", {}).get("checkpoints")
    if checkpoints:  # the next budget may be smaller: a checkpoint past it would not validate
        rest["decision"]["checkpoints"] = [c for c in checkpoints if c < n_trials]
    by_param = {st.param: st for st in steps}
    lines = [
        f"# Next sweep, written by `hpo refine` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from",
        f"# study {spec.study_name}: {s.complete} completed, {s.pruned} pruned, {s.failed} failed"
        f" trials; best {spec.metric} {best}.",
        "# Each parameter carries its rule and evidence; see the rationale table for details.",
        f"# warm_start: the new study begins with the trials of {spec.study_name} that fit this"
        " space (not counted in n_trials); remove it to start cold.",
        yaml.safe_dump(head, sort_keys=False).rstrip(),
    ]
    if rest:
        lines.append(yaml.safe_dump(rest, sort_keys=False, default_flow_style=None).rstrip())
    lines.append("fixed:" + ("" if fixed else " {}"))
    for key, value in fixed.items():
        note = ""
        if key in by_param:
            note = f"  # FIXED: {by_param[key].evidence}"
        lines.append(f"  {key}: {_flow(value)}{note}")
    lines.append("param_ranges:" + ("" if ranges else " {}"))
    for key, value in ranges.items():
        st = by_param[key]
        lines.append(f"  {key}: {_flow(_tidy(value))}  # {st.rule.upper()}: {st.evidence}")
    return "\n".join(lines) + "\n"


_KEY_ORDER = ("type", "low", "high", "step", "log", "choices", "weights", "when", "description")


def _param_dict(p: ParamSpec) -> dict[str, Any]:
    d = p.model_dump(mode="json", exclude_unset=True)
    d["type"] = p.type
    return _tidy(d)


def _tidy(d: dict[str, Any]) -> dict[str, Any]:
    """Keys in the order people write them; int bounds as ints."""
    if d.get("type") == "int":
        for key in ("low", "high", "step"):
            if d.get(key) is not None:
                d[key] = int(d[key])
    ordered = {k: d[k] for k in _KEY_ORDER if k in d}
    ordered.update({k: v for k, v in d.items() if k not in ordered})
    return ordered


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...").removesuffix("...").strip()

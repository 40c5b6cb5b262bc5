"""The next search space from the evidence of a sweep: conservative, explainable rules.

Every parameter of the old space gets exactly one rule, with its evidence (seed 001's design):

- ``fix``: a categorical/boolean whose elites all agree (``fix_min_convergence``, 100% by default)
  AND whose best-vs-worst difference of means is above ``fix_min_effect`` (relative) AND whose test
  gives p < ``fix_max_p``, with no underpowered group (a choice with too few trials is never
  dropped). A numeric parameter whose elites sit at a bound that is also a hard limit (e.g. label
  smoothing at 0) is fixed at that bound under the same p-value rule.
- ``expand``: a numeric bound that elites hit grows by ``expand_factor`` x the range (in log space
  for log parameters), never past a hard limit (the spec's ``refine.hard_limits``, the
  objective's own limits, positivity of log ranges, integer bounds for ints).
- ``narrow``: with a strong signal (Spearman p < ``narrow_max_p``, or an importance of at least
  ``narrow_min_importance``, which also catches an optimum inside the range that a rank
  correlation misses) and no boundary hit, the range shrinks to the elite span plus
  ``narrow_margin`` x that span on each side.
- ``reweight``: a categorical switch (a parameter others depend on) gets weights proportional to
  the elite share of each arm, each at least ``arm_floor``, so the weaker arm still gets a fair
  trial; kept as it is when the arm comparison is underpowered.
- ``drop_choice``: a choice with enough trials, no elite and a significant test is removed.
- ``keep``: a weak or underpowered signal keeps its range.

Fixing a switch removes the dependents of the other arms (``drop``) and the condition from the
dependents of the kept arm. The suggested ``n_trials`` is ``trials_per_param`` per searched
parameter, rounded up to 10.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from hpo_core.analysis import ParamEffect, SweepAnalysis
from hpo_core.analysis.elites import EliteParam
from hpo_core.objectives import objective_hard_limits
from hpo_core.spec import ParamSpec, SweepSpec, parse_spec

__all__ = ["RefineStep", "Refinement", "refine_spec"]


@dataclass(frozen=True)
class RefineStep:
    param: str
    rule: str  # fix | expand | narrow | reweight | drop_choice | drop | keep
    old: str  # the old space, as text
    new: str  # the new space, as text ("fixed: X" when fixed, "removed" when dropped)
    evidence: str  # the figures behind the rule
    figures: dict[str, Any] = field(default_factory=dict)


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


def _fmt_p(p: float | None) -> str:
    return "p=n/a" if p is None else f"p={p:.3g}"


def _evidence(e: ParamEffect, ep: EliteParam | None) -> str:
    parts = []
    if e.test == "spearman" and e.rho is not None:
        parts.append(f"rho={e.rho:+.2f} {_fmt_p(e.p)}")
    elif e.test != "none":
        parts.append(f"{e.test} {_fmt_p(e.p)}")
        if e.best_value is not None and e.relative_difference is not None:
            parts.append(f"best {e.best_value!r} by {e.relative_difference:+.1%}")
    if ep is not None and ep.convergence is not None:
        parts.append(f"elites {ep.convergence:.0%} {ep.top_value!r}")
    if ep is not None and ep.low is not None and ep.high is not None:
        parts.append(f"elites {ep.low:.4g}-{ep.high:.4g}")
    parts.append(f"n={e.n}" + (" underpowered" if e.underpowered else ""))
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
        if x != 0 and ((outward == "high" and value < x) or (outward == "low" and value > x)):
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


def _numeric(
    name: str,
    p: ParamSpec,
    e: ParamEffect,
    ep: EliteParam,
    spec: SweepSpec,
    importance: dict[str, float],
) -> tuple[str, dict[str, Any] | None, Any, str]:
    """(rule, new param dict or None when fixed, fixed value, note)."""
    r = spec.refine
    d = _param_dict(p)
    assert p.low is not None and p.high is not None
    lo, hi = _to_space(p, p.low), _to_space(p, p.high)
    span = hi - lo
    hard_low, hard_high = _limits(spec, name, p)
    if ep.hit is not None:
        bound = p.high if ep.hit == "high" else p.low
        hard = hard_high if ep.hit == "high" else hard_low
        if hard is not None and (bound >= hard if ep.hit == "high" else bound <= hard):
            if e.p is not None and e.p < r.fix_max_p and not e.underpowered:
                value = int(bound) if p.type == "int" else bound
                return "fix", None, value, f"elites at the {ep.hit} bound, a hard limit"
            return "keep", d, None, f"elites at the {ep.hit} bound, which is a hard limit"
        grow = r.expand_factor * span
        if ep.hit == "high":
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
        return "expand", d, None, f"elites hit the {ep.hit} bound"
    important = importance.get(name, 0.0) >= r.narrow_min_importance
    strong = (e.p is not None and e.p < r.narrow_max_p and not e.underpowered) or important
    if strong and ep.low is not None and ep.high is not None and ep.n_elites >= 3:
        e_lo, e_hi = _to_space(p, ep.low), _to_space(p, ep.high)
        margin = max(r.narrow_margin * (e_hi - e_lo), 0.05 * span)
        new_lo, new_hi = max(lo, e_lo - margin), min(hi, e_hi + margin)
        if new_hi - new_lo < 0.9 * span:
            d["low"] = _nice(p, _from_space(p, new_lo), outward="low", limit=p.low)
            d["high"] = _nice(p, _from_space(p, new_hi), outward="high", limit=p.high)
            d["low"], d["high"] = max(d["low"], p.low), min(d["high"], p.high)
            if d["low"] >= d["high"]:
                return "keep", _param_dict(p), None, "too narrow"
            d.pop("step", None) if p.type == "float" else None
            why = "importance" if important else "Spearman p"
            return "narrow", d, None, f"strong signal ({why}): narrowed to the elite cluster"
    return "keep", d, None, "weak or underpowered signal: kept broad"


def _discrete(
    name: str, p: ParamSpec, e: ParamEffect, ep: EliteParam, a: SweepAnalysis, switch: bool
) -> tuple[str, dict[str, Any] | None, Any, str]:
    r = a.spec.refine
    d = _param_dict(p)
    effect_ok = (e.relative_difference or 0.0) >= r.fix_min_effect
    p_ok = e.p is not None and e.p < r.fix_max_p
    if (
        ep.convergence is not None
        and ep.convergence >= r.fix_min_convergence
        and effect_ok
        and p_ok
        and not e.underpowered
        and ep.n_elites >= 2
    ):
        return "fix", None, ep.top_value, "elites converged, effect and p-value pass"
    if switch and p.type == "categorical":
        arm = next((arm for arm in a.elites.arms if arm.switch == name), None)
        if arm is None or arm.underpowered or not a.elites.numbers:
            return "keep", d, None, "arm comparison underpowered: weights kept"
        shares = {s.value: s.elite_share for s in arm.arms}
        choices = list(p.choices or [])
        raw = [max(shares.get(c, 0.0), 1e-9) for c in choices]
        weights = _floor_weights([w / sum(raw) for w in raw], r.arm_floor)
        d["weights"] = [round(w, 3) for w in weights]
        total = sum(d["weights"])
        d["weights"][-1] = round(d["weights"][-1] + (1 - total), 3)
        return "reweight", d, None, f"weights toward the elite share, floor {r.arm_floor:.0%}"
    if p.type == "categorical" and p_ok and not e.underpowered:
        elite_values = {g.value for g in e.groups if ep.top_value == g.value}
        dead = [
            g.value
            for g in e.groups
            if g.n >= a.spec.analysis.min_group_trials
            and g.value not in elite_values
            and _elite_count(a, name, g.value) == 0
        ]
        keep = [c for c in p.choices or [] if c not in dead]
        if dead and len(keep) >= 1:
            d["choices"] = keep
            if p.weights:
                weights = [w for c, w in zip(p.choices or [], p.weights, strict=True) if c in keep]
                d["weights"] = [round(w / sum(weights), 3) for w in weights]
            if len(keep) == 1:
                return "fix", None, keep[0], "every other choice has no elite"
            return "drop_choice", d, None, f"no elite with {', '.join(map(repr, dead))}"
    return "keep", d, None, "weak or underpowered signal: kept broad"


def _elite_count(a: SweepAnalysis, name: str, value: Any) -> int:
    frame = a.table.frame
    elites = frame[frame["number"].isin(a.elites.numbers)]
    return int((elites[a.table.param(name)] == value).sum())


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
            rule, new, value, note = _numeric(name, p, e, ep, spec, analysis.importance)
        else:
            rule, new, value, note = _discrete(name, p, e, ep, analysis, name in switches)
        evidence = f"{note}; {_evidence(e, ep)}"
        if rule == "fix":
            fixed[name] = value
            steps.append(RefineStep(name, rule, _space(old), f"fixed: {value!r}", evidence))
        else:
            assert new is not None
            ranges[name] = new
            steps.append(RefineStep(name, rule, _space(old), _space(new), evidence))
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

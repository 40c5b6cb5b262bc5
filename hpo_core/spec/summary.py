"""What a spec searches, in numbers: computed here, printed by `hpo validate`."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hpo_core.spec.model import ParamSpec, SweepSpec, condition_holds

__all__ = ["SpecSummary", "render_summary", "summarize_spec"]

_ENUMERATION_LIMIT = 200_000


@dataclass(frozen=True)
class SpecSummary:
    study_name: str
    objective: str
    direction: str
    n_trials: int
    sampler: str
    pruner: str
    always: list[str]  # parameters sampled in every trial
    conditional: dict[str, list[str]]  # condition -> parameters sampled only under it
    fixed: dict[str, Any]
    continuous: list[str]  # parameters with infinitely many values
    discrete_combinations: int | None  # over discrete parameters; None when too many to count
    weighted: dict[str, dict[str, float]] = field(default_factory=dict)  # choice -> probability


def summarize_spec(spec: SweepSpec) -> SpecSummary:
    params = spec.param_ranges
    weighted = {
        name: {
            json.dumps(c): w / sum(p.weights or [])
            for c, w in zip(p.choices or [], p.weights or [], strict=False)
        }
        for name, p in params.items()
        if p.is_weighted
    }
    pruner_args: dict[str, Any] = {}
    if spec.pruner.type == "hyperband":
        pruner_args = {
            "min_resource": spec.pruner.min_resource,
            "max_resource": spec.pruner.max_resource,
            "reduction_factor": spec.pruner.reduction_factor,
        }
    pruner = _with_args(spec.pruner.type, pruner_args | spec.pruner.options)
    seed = {"seed": spec.sampler.seed} if spec.sampler.seed is not None else {}
    sampler = _with_args(spec.sampler.type, seed | spec.sampler.options)
    return SpecSummary(
        study_name=spec.study_name,
        objective=spec.objective,
        direction=spec.direction,
        n_trials=spec.n_trials,
        sampler=sampler,
        pruner=pruner,
        always=[n for n, p in params.items() if not p.when],
        conditional=spec.condition_groups(),
        fixed=dict(spec.fixed),
        continuous=[n for n, p in params.items() if p.n_values is None],
        discrete_combinations=count_discrete_combinations(spec),
        weighted=weighted,
    )


def count_discrete_combinations(spec: SweepSpec) -> int | None:
    """Distinct settings of the discrete parameters, respecting conditions.

    Parents of conditions are enumerated; every other parameter multiplies in the number of its
    values when its condition holds. Continuous parameters are left out, as the user's own
    estimates do ("~13,600 discrete combinations, without continuous params").
    """
    params = spec.param_ranges
    parents = sorted({p for param in params.values() for p in (param.when or {}) if p in params})
    sizes = [params[name].n_values for name in parents]
    if any(n is None for n in sizes):
        return None  # a condition on a continuous parameter: no finite count
    if math.prod(n for n in sizes if n is not None) > _ENUMERATION_LIMIT:
        return None
    parent_values = [params[name].possible_values or [] for name in parents]
    total = 0
    for combo in itertools.product(*parent_values):
        assignment = dict(spec.fixed)
        assignment.update(zip(parents, combo, strict=False))
        if not _consistent(parents, params, assignment):
            continue
        count = 1
        for name, param in params.items():
            if name in parents or not condition_holds(param.when, assignment):
                continue
            n = param.n_values
            if n is not None:
                count *= n
        total += count
    return total


def _consistent(
    parents: list[str], params: dict[str, ParamSpec], assignment: dict[str, Any]
) -> bool:
    """A parent that would not be sampled must not vary: count its combinations once."""
    for name in parents:
        if not condition_holds(params[name].when, assignment):
            values = params[name].possible_values or []
            if values and assignment[name] != values[0]:
                return False
    return True


def render_summary(summary: SpecSummary, *, source: str = "") -> str:
    lines = [
        f"OK {source}".rstrip(),
        f"  study      {summary.study_name}  ({summary.direction} {summary.objective}, "
        f"{summary.n_trials} trials)",
        f"  sampler    {summary.sampler}",
        f"  pruner     {summary.pruner}",
        f"  searched   {len(summary.always) + sum(map(len, summary.conditional.values()))} "
        f"parameters, {len(summary.fixed)} fixed",
        f"    always: {', '.join(summary.always) or '-'}",
    ]
    for condition, names in summary.conditional.items():
        lines.append(f"    when {condition}: {', '.join(names)}")
    if summary.weighted:
        for name, probs in summary.weighted.items():
            shares = ", ".join(f"{c} {p:.0%}" for c, p in probs.items())
            lines.append(f"    weighted {name}: {shares}")
    if summary.fixed:
        fixed = ", ".join(f"{k}={json.dumps(v)}" for k, v in summary.fixed.items())
        lines.append(f"  fixed      {fixed}")
    combos = (
        f"{summary.discrete_combinations:,}"
        if summary.discrete_combinations is not None
        else "too many to count"
    )
    continuous = (
        f" x {len(summary.continuous)} continuous ({', '.join(summary.continuous)})"
        if summary.continuous
        else ""
    )
    lines.append(f"  space      {combos} discrete combinations{continuous}")
    return "\n".join(lines)


def _with_args(name: str, args: dict[str, Any]) -> str:
    """``cmaes (seed=4, popsize=8)``: a sampler or pruner with the arguments the spec gives it."""
    return name + (f" ({', '.join(f'{k}={v}' for k, v in args.items())})" if args else "")

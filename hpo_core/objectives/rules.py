"""Spec checks shared by the built-in objectives: the values a parameter can take over the whole
search space, and rules each of them must satisfy (checked by ``hpo validate`` so that a spec
cannot launch trials that are bound to fail). No torch."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hpo_core.errors import SpecIssue

if TYPE_CHECKING:
    from hpo_core.spec import SweepSpec

__all__ = ["Rule", "check_divisible", "check_rules", "param_values"]

Rule = tuple[Callable[[Any], bool], str]  # (value -> ok, what it must be: "must be >= 1")


def param_values(spec: SweepSpec, name: str, default: Any = None) -> tuple[str, list[Any]] | None:
    """Where a parameter is set and the values it can take (bounds stand for float ranges);
    ``default`` when the spec leaves it out (None: not at all)."""
    if name in spec.fixed:
        return f"fixed.{name}", [spec.fixed[name]]
    param = spec.param_ranges.get(name)
    if param is None:
        return None if default is None else (f"fixed.{name}", [default])
    if param.type == "categorical":
        return f"param_ranges.{name}.choices", list(param.choices or [])
    if param.type == "bool":
        return f"param_ranges.{name}", [True, False]
    assert param.low is not None and param.high is not None
    if param.type == "int" and param.high - param.low <= 64:
        step = int(param.step or 1)
        return f"param_ranges.{name}", list(range(int(param.low), int(param.high) + 1, step))
    return f"param_ranges.{name}", [param.low, param.high]


def check_rules(spec: SweepSpec, rules: Mapping[str, Rule]) -> list[SpecIssue]:
    """One issue per parameter with a value that breaks its rule (the first such value)."""
    issues = []
    for name, (rule, requirement) in rules.items():
        found = param_values(spec, name)
        if found is None:
            continue
        path, values = found
        for value in values:
            try:
                ok = rule(value)
            except TypeError:
                ok = False
            if not ok:
                issues.append(SpecIssue(path, f"{name} {requirement}, but got {value!r}"))
                break
    return issues


def check_divisible(
    spec: SweepSpec, width: str, heads: str, *, defaults: tuple[Any, Any] = (None, None)
) -> list[SpecIssue]:
    """``width % heads == 0`` for every combination of their values (attention heads)."""
    d_model, n_head = param_values(spec, width, defaults[0]), param_values(spec, heads, defaults[1])
    if not (d_model and n_head):
        return []
    for d, h in itertools.product(d_model[1], n_head[1]):
        if isinstance(d, int) and isinstance(h, int) and h > 0 and d % h:
            return [
                SpecIssue(
                    n_head[0],
                    f"{width} % {heads} == 0 must hold for every combination, but got "
                    f"({width}={d}, {heads}={h}); use head counts that divide every {width} "
                    "choice",
                )
            ]
    return []

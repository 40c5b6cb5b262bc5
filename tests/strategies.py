"""Hypothesis strategies and settings shared by the property tests (tests/spec, tests/analysis):
valid spec dictionaries over every parameter type, with conditions, decisions, analysis and refine
sections.

Examples are derandomized (fixed per test) so CI never meets a new one;
HPO_HYPOTHESIS_HUNT=N runs N times the examples, random ones, and shrinks: for hunting bugs locally.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

_HUNT = int(os.environ.get("HPO_HYPOTHESIS_HUNT", "0"))


def ci(max_examples: int) -> settings:
    """Fixed examples in CI; no shrinking there either (a failure is reported at once, as found,
    instead of after minutes of shrinking): shrink when hunting."""
    phases = list(Phase) if _HUNT else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=max_examples * max(1, _HUNT),
        database=None,
        derandomize=not _HUNT,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=8)
)


def typed_key(value: Any) -> tuple[type, Any]:
    """A key under which 1, 1.0 and True are different choices."""
    return (type(value), value)


@st.composite
def float_params(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "log", "step"]))
    if kind == "log":
        low = draw(st.floats(1e-8, 1e3))
        # not a range a few ulps wide: Optuna's TPE then draws NaN or exp(log(low)) < low
        factor = draw(st.just(1.0) | st.floats(1 + 1e-9, 1e6))
        return {"type": "float", "low": low, "high": low * factor, "log": True}
    if kind == "step":
        step = draw(st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 10.0]))
        start, k = draw(st.integers(-1000, 1000)), draw(st.integers(0, 40))
        low, high = round(start * step, 6), round((start + k) * step, 6)
        return {"type": "float", "low": low, "high": high, "step": step}
    low = draw(st.floats(-1e6, 1e6))
    return {"type": "float", "low": low, "high": low + draw(st.floats(0.0, 1e6))}


@st.composite
def int_params(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "log", "step"]))
    if kind == "log":
        low = draw(st.integers(1, 1000))
        p: dict[str, Any] = {"type": "int", "low": low, "high": low + draw(st.integers(0, 10**4))}
        p["log"] = True
        if draw(st.booleans()):
            p["step"] = 1
        return p
    low = draw(st.integers(-1000, 1000))
    if kind == "step":
        step = draw(st.integers(1, 10))
        return {"type": "int", "low": low, "high": low + step * draw(st.integers(0, 30))}
    return {"type": "int", "low": low, "high": low + draw(st.integers(0, 1000))}


@st.composite
def categorical_params(draw: st.DrawFn) -> dict[str, Any]:
    choices = draw(st.lists(SCALARS, min_size=1, max_size=5, unique_by=typed_key))
    p: dict[str, Any] = {"type": "categorical", "choices": choices}
    if draw(st.booleans()):
        p["weights"] = draw(
            st.lists(st.floats(1e-3, 1e3), min_size=len(choices), max_size=len(choices))
        )
    return p


def _possible(p: dict[str, Any]) -> list[Any] | None:
    """The values a (small) parent can take, for conditions; None for a numeric range."""
    if p["type"] == "bool":
        return [True, False]
    if p["type"] == "categorical":
        return list(p["choices"])
    if p["type"] == "int" and not p.get("log") and p["high"] - p["low"] <= 50:
        return list(range(p["low"], p["high"] + 1, p.get("step", 1)))
    if p["type"] == "int" or (p["type"] == "float" and "step" not in p):
        return [p["low"], p["high"]]  # a wide range: checked without listing its values
    return None


@st.composite
def valid_spec_dicts(
    draw: st.DrawFn, *, min_params: int = 0, max_params: int = 7
) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=min_params, max_size=max_params + 3, unique=True))
    n_fixed = draw(st.integers(0, min(3, max(0, len(names) - min_params))))
    fixed = {n: draw(SCALARS) for n in names[:n_fixed]}
    params: dict[str, dict[str, Any]] = {}
    for name in names[n_fixed:]:
        p = dict(
            draw(
                st.one_of(
                    float_params(), int_params(), categorical_params(), st.just({"type": "bool"})
                )
            )
        )
        parents = [(n, v) for n, q in params.items() if (v := _possible(q))]
        parents += [(n, [v]) for n, v in fixed.items()]
        if parents and draw(st.integers(0, 2)) == 0:
            when: dict[str, Any] = {}
            for parent, values in draw(
                st.lists(st.sampled_from(parents), min_size=1, max_size=2, unique_by=lambda x: x[0])
            ):
                wanted = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
                when[parent] = wanted[0] if len(wanted) == 1 and draw(st.booleans()) else wanted
            p["when"] = when
        if draw(st.integers(0, 4)) == 0:
            p["description"] = draw(st.text(max_size=12))
        params[name] = p
    n_trials = draw(st.integers(1, 200))
    spec: dict[str, Any] = {
        "study_name": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)),
        "n_trials": n_trials,
        "direction": draw(st.sampled_from(["maximize", "minimize"])),
        "objective": "synthetic",
        "sampler": {
            "type": draw(st.sampled_from(["random", "tpe"])),
            "seed": draw(st.integers(0, 2**32 - 1)),
            "n_startup_trials": draw(st.integers(0, 5)),
            "multivariate": draw(st.booleans()),
            "constant_liar": draw(st.booleans()),
        },
        "pruner": draw(
            st.sampled_from(
                [
                    {"type": "none"},
                    {"type": "median", "n_startup_trials": 2},
                    {"type": "hyperband", "min_resource": 1, "max_resource": 9},
                ]
            )
        ),
        "fixed": fixed,
        "param_ranges": params,
    }
    checkpoints = sorted(set(draw(st.lists(st.integers(1, 200), max_size=3))))
    decision: dict[str, Any] = {"checkpoints": [c for c in checkpoints if c < n_trials]}
    if draw(st.booleans()):
        lo, hi = sorted(draw(st.lists(st.floats(-1, 2), min_size=2, max_size=2)))
        worse, better = (lo, hi) if spec["direction"] == "maximize" else (hi, lo)
        decision |= {"stop_if_best_worse_than": worse, "on_track_if_best_better_than": better}
    if draw(st.booleans()):
        decision["target"] = draw(st.floats(-1, 2))
    if draw(st.booleans()):
        decision["plateau_trials"] = draw(st.integers(1, 20))
    if draw(st.booleans()):
        decision["min_trials_for_failure_rate"] = draw(st.integers(1, 20))
    spec["decision"] = decision
    discrete = [n for n, p in params.items() if p["type"] in ("categorical", "bool")]
    spec["analysis"] = {
        "min_group_trials": draw(st.integers(2, 6)),
        "elite_quantile": draw(st.floats(0.05, 0.5)),
        "compare": draw(st.lists(st.sampled_from(discrete), unique=True)) if discrete else [],
    }
    refine: dict[str, Any] = {"expand_factor": draw(st.sampled_from([0.25, 0.5, 1.0, 3.0]))}
    numeric = [n for n, p in params.items() if p["type"] in ("float", "int")]
    with_limits: bool = draw(st.booleans())
    if numeric and with_limits:
        limits: dict[str, dict[str, float]] = {}
        for name in draw(st.lists(st.sampled_from(numeric), unique=True, max_size=3)):
            p, limit = params[name], {}
            if draw(st.booleans()):
                limit["low"] = p["low"] - draw(st.sampled_from([0, 0.5, 1, 10]))
            if draw(st.booleans()):
                limit["high"] = p["high"] + draw(st.sampled_from([0, 0.5, 1, 10]))
            limits[name] = limit
        refine["hard_limits"] = limits
    spec["refine"] = refine
    return spec

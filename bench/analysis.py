"""(f) Analysis time: the full analysis (no plots) of studies with 1,000 and 10,000 trials over
15 parameters (8 floats, 3 ints, 2 categoricals, 2 booleans, 3 of them conditional), built in
memory. Targets: at most 1 s and 5 s. fANOVA is timed apart at 1,000 trials (it is opt-in).

And a study of 10,000 trials with intermediate values (20 steps each), pruned the way Hyperband
prunes (at steps 1, 3 and 9: 70% of them), so that every rung is read (:mod:`hpo_core.analysis.
rungs`). Target: under 2 s. Beside it, Optuna's own PED-ANOVA importance on the same study (what
a plain Optuna user would run), and the ratio."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from hpo_core.analysis import analyze_study
from hpo_core.spec import parse_spec

SPACE: dict[str, dict[str, Any]] = {
    "arm": {"type": "categorical", "choices": ["a", "b"]},
    "f0": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "f1": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
    "f2": {"type": "float", "low": 0.0, "high": 1.0},
    "f3": {"type": "float", "low": 0.0, "high": 0.5},
    "f4": {"type": "float", "low": 1.0, "high": 30.0},
    "f5": {"type": "float", "low": 0.5, "high": 5.0},
    "f6": {"type": "float", "low": 0.0, "high": 1.0, "when": {"arm": "b"}},
    "f7": {"type": "float", "low": 0.0, "high": 1.0, "when": {"arm": "b"}},
    "i0": {"type": "int", "low": 1, "high": 10},
    "i1": {"type": "int", "low": 2, "high": 64},
    "i2": {"type": "int", "low": 1, "high": 6, "when": {"arm": "a"}},
    "c0": {"type": "categorical", "choices": [8, 16, 32, 64]},
    "b0": {"type": "bool"},
    "b1": {"type": "bool"},
}


def _dist(p: dict[str, Any]) -> Any:
    if p["type"] == "float":
        return FloatDistribution(p["low"], p["high"], log=p.get("log", False))
    if p["type"] == "int":
        return IntDistribution(p["low"], p["high"])
    if p["type"] == "bool":
        return CategoricalDistribution([True, False])
    return CategoricalDistribution(p["choices"])


def make_study(n: int, seed: int = 0) -> tuple[optuna.Study, Any]:
    rng = np.random.default_rng(seed)
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": f"bench_analysis_{n}",
                "n_trials": n,
                "objective": "noop",
                "param_ranges": SPACE,
            }
        )
    ).spec
    trials = []
    for _ in range(n):
        params: dict[str, Any] = {}
        for name, p in SPACE.items():
            if "when" in p and params.get("arm") != p["when"]["arm"]:
                continue
            if p["type"] == "float":
                lo, hi = p["low"], p["high"]
                params[name] = float(
                    np.exp(rng.uniform(np.log(lo), np.log(hi)))
                    if p.get("log")
                    else rng.uniform(lo, hi)
                )
            elif p["type"] == "int":
                params[name] = int(rng.integers(p["low"], p["high"] + 1))
            elif p["type"] == "bool":
                params[name] = bool(rng.integers(2))
            else:
                params[name] = p["choices"][int(rng.integers(len(p["choices"])))]
        value = (
            0.5
            + 0.1 * params["f2"]
            - 0.05 * abs(np.log10(params["f0"]) + 3)
            + 0.03 * params["b0"]
            + rng.normal(0, 0.02)
        )
        state = TrialState.PRUNED if rng.random() < 0.2 else TrialState.COMPLETE
        trials.append(
            create_trial(
                params=params,
                distributions={k: _dist(SPACE[k]) for k in params},
                value=float(value) if state == TrialState.COMPLETE else None,
                state=state,
            )
        )
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study, spec


STEPS = 20
CUTS = ((1, 0.4), (3, 0.2), (9, 0.1))  # pruned at step: share of trials; the rest complete


def make_pruned_study(n: int, seed: int = 0) -> tuple[optuna.Study, Any]:
    """:func:`make_study`'s space and surface as learning curves over :data:`STEPS` steps, cut
    at :data:`CUTS`."""
    study, spec = make_study(n, seed)
    rng = np.random.default_rng(seed + 1)
    shares = np.cumsum([share for _, share in CUTS])
    trials = []
    for t in study.get_trials(deepcopy=False):
        final = t.value if t.value is not None else float(0.5 + rng.normal(0, 0.05))
        draw = rng.random()
        cut = next(
            (step for (step, _), edge in zip(CUTS, shares, strict=True) if draw < edge), None
        )
        last = cut if cut is not None else STEPS
        curve = {
            s: float(final - 0.3 * np.exp(-s / 3) + rng.normal(0, 0.01)) for s in range(1, last + 1)
        }
        trials.append(
            create_trial(
                params=t.params,
                distributions=t.distributions,
                value=curve[STEPS] if cut is None else None,
                intermediate_values=curve,
                state=TrialState.COMPLETE if cut is None else TrialState.PRUNED,
            )
        )
    pruned = optuna.create_study(direction="maximize")
    pruned.add_trials(trials)
    return pruned, spec


def _fastest(study: optuna.Study, spec: Any, repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` full analyses: (seconds, its result)."""
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = analyze_study(study, spec)
        runs.append((time.perf_counter() - began, result))
    return min(runs, key=lambda run: run[0])


def pruned_times(n: int = 10000, repeats: int = 3) -> dict[str, Any]:
    """The full analysis of :func:`make_pruned_study` against Optuna's importance alone."""
    study, spec = make_pruned_study(n)
    best, result = _fastest(study, spec, repeats)
    timings = result.timings
    plain: list[float] = []
    for _ in range(repeats):
        began = time.perf_counter()
        optuna.importance.get_param_importances(study)
        plain.append(time.perf_counter() - began)
    rungs = result.rungs.rungs if result.rungs is not None else []
    row = {
        "trials": n,
        "params": len(SPACE),
        "steps": STEPS,
        "pruned": int(sum(t.state == TrialState.PRUNED for t in study.get_trials(deepcopy=False))),
        "rungs": [r.label for r in rungs],
        "seconds": round(best, 3),
        "optuna_importance_s": round(min(plain), 3),
        "ratio": round(best / min(plain), 2),
        **{f"{k}_s": round(v, 3) for k, v in timings.items()},
    }
    print(
        f"  analysis of {n} trials with {STEPS} steps, {row['pruned']} pruned: {best:.2f} s "
        f"(Optuna's importance alone {min(plain):.2f} s)",
        flush=True,
    )
    return row


def analysis_times(sizes: list[int], repeats: int = 2) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        study, spec = make_study(n)
        best, result = _fastest(study, spec, repeats)
        timings = result.timings
        rows.append(
            {
                "trials": n,
                "params": len(SPACE),
                "seconds": round(best, 3),
                **{f"{k}_s": round(v, 3) for k, v in timings.items()},
            }
        )
        print(f"  analysis of {n} trials: {best:.2f} s", flush=True)
    study, spec = make_study(1000)
    began = time.perf_counter()
    analyze_study(study, spec, importance="fanova")
    rows.append(
        {
            "trials": 1000,
            "params": len(SPACE),
            "importance": "fanova",
            "seconds": round(time.perf_counter() - began, 3),
        }
    )
    print(f"  analysis of 1000 trials with fANOVA: {rows[-1]['seconds']:.2f} s", flush=True)
    return rows


def render(results: dict[str, Any]) -> list[str]:
    rows = results.get("analysis") or []
    if not rows:
        return []
    pruned = results.get("analysis_pruned")
    extra = []
    if pruned:
        extra = [
            "",
            f"With intermediate values: {pruned['trials']} trials x {pruned['steps']} steps, "
            f"{pruned['pruned']} pruned (rungs {', '.join(pruned['rungs'])}): analysis "
            f"{pruned['seconds']} s (target 2 s; table {pruned.get('trials_s', '-')} s, "
            f"directionality and rungs {pruned.get('directionality_s', '-')} s, importance "
            f"{pruned.get('importance_s', '-')} s); Optuna's PED-ANOVA importance alone on the "
            f"same study {pruned['optuna_importance_s']} s (ratio {pruned['ratio']}).",
        ]
    lines = [
        "",
        "| trials | parameters | importance | total s | table s | directionality s "
        "| importance s | elites s | flags s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['trials']} | {r['params']} | {r.get('importance', 'ped_anova')} | "
            f"{r['seconds']} | {r.get('trials_s', '-')} | {r.get('directionality_s', '-')} | "
            f"{r.get('importance_s', '-')} | {r.get('elites_s', '-')} | {r.get('flags_s', '-')} |"
        )
    return lines + extra


if __name__ == "__main__":
    print(pruned_times())
    for row in analysis_times([1000, 10000], repeats=1):
        print(row)

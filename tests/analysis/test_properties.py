"""Property-based tests of the analysis: any small study, in any state, over any valid space is
analysed without an exception, and its refinement is a valid spec or an HpoError; the binary
metrics stay in [0, 1] and agree with counts taken by hand.

Examples are derandomized (see tests/spec/test_properties.py; HPO_HYPOTHESIS_HUNT=N hunts).
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import optuna
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st
from optuna.trial import TrialState

from hpo_core.analysis import analyze_study
from hpo_core.errors import HpoError
from hpo_core.metrics import binary_metrics
from hpo_core.refine import refine_spec
from hpo_core.spec import parse_spec
from hpo_core.study import suggest_params
from tests.strategies import ci, valid_spec_dicts

optuna.logging.set_verbosity(optuna.logging.ERROR)

STATES = st.sampled_from(
    [TrialState.COMPLETE] * 6 + [TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING]
)
VALUES = (
    st.sampled_from([0.0, 0.5, 1.0])  # ties
    | st.floats(-1.0, 2.0)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([math.nan, math.inf, -math.inf])  # NaN: Optuna fails the trial
)


def _position(p: Any, v: Any) -> float:
    """Where ``v`` lies in the parameter's space, 0 to 1: the planted signal."""
    if p.type in ("float", "int"):
        lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
        x = math.log(v) if p.log else v
        return (x - lo) / (hi - lo) if hi > lo else 0.5
    values = p.possible_values or [v]
    return next((i for i, c in enumerate(values) if c == v), 0) / max(1, len(values) - 1)


@st.composite
def studies(draw: st.DrawFn) -> tuple[optuna.Study, Any]:
    spec = parse_spec(yaml.safe_dump(draw(valid_spec_dicts()), sort_keys=False)).spec
    study = optuna.create_study(
        direction=spec.direction,
        sampler=optuna.samplers.RandomSampler(seed=draw(st.integers(0, 2**16))),
    )
    mode = draw(st.sampled_from(["noise", "constant", "signal"]))
    constant = draw(VALUES)
    signal: str | None = draw(st.sampled_from([*spec.param_ranges, None]))
    noise = draw(st.sampled_from([0.0, 0.01, 0.3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for state in draw(st.lists(STATES, max_size=40)):
            trial = study.ask()
            params = suggest_params(trial, spec)
            if draw(st.integers(0, 4)) == 0:
                trial.set_user_attr("chance_level", draw(st.floats(0, 1)))
            if state == TrialState.RUNNING:
                continue
            if state == TrialState.FAIL:
                study.tell(trial, state=TrialState.FAIL)
                continue
            if mode == "constant":
                value = constant
            elif mode == "signal" and signal in params:
                value = _position(spec.param_ranges[signal], params[signal]) + noise * draw(
                    st.floats(-1, 1)
                )
            else:
                value = draw(VALUES)
            if state == TrialState.PRUNED:
                for step in range(draw(st.integers(0, 3))):
                    trial.report(value if math.isfinite(value) else 0.0, step)
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)  # NaN turns the trial into a FAIL
    return study, spec


def _within(v: float, low: float, high: float) -> bool:
    tol = 1e-9 * max(1.0, abs(low), abs(high))
    return low - tol <= v <= high + tol


def _planted(n_trials: int) -> tuple[optuna.Study, Any]:
    """A study whose value is x plus 0.5 in arm 'a': refine fixes c and narrows (20 trials) or
    expands (40, the best at the edge) x, so the rules' checks below run in CI (the drawn
    studies are too small or too noisy for refine to change a range)."""
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "planted",
                "n_trials": 200,
                "objective": "synthetic",
                "param_ranges": {
                    "x": {"type": "float", "low": 0.0, "high": 1.0},
                    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
                },
            }
        )
    ).spec
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    for _ in range(n_trials):
        trial = study.ask()
        params = suggest_params(trial, spec)
        study.tell(trial, params["x"] + (0.5 if params["c"] == "a" else 0.0))
    return study, spec


@ci(60)
@given(studies())
@example(_planted(20))
@example(_planted(40))
def test_analysis_never_raises_and_refine_validates(case: tuple[optuna.Study, Any]) -> None:
    study, spec = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = analyze_study(study, spec)
    assert analysis.decision.action in ("continue", "stop", "done")
    event(f"decision: {analysis.decision.action} ({analysis.decision.rule})")
    assert set(analysis.importance) <= set(spec.param_ranges)
    for value in analysis.importance.values():
        assert math.isfinite(value) and value >= 0
    assert {e.name for e in analysis.effects} == set(spec.param_ranges)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refinement = refine_spec(analysis)
    except HpoError as exc:
        event(f"refine: {type(exc).__name__}")
        return
    again = parse_spec(refinement.text).spec
    assert again == refinement.spec
    assert set(again.param_ranges) <= set(spec.param_ranges)
    for step in refinement.steps:
        event(f"rule: {step.rule}")
        old = spec.param_ranges[step.param]
        new = again.param_ranges.get(step.param)
        if step.rule == "fix":
            value = again.fixed[step.param]
            if old.low is not None and old.high is not None:
                assert _within(value, old.low, old.high), (step, value)
            else:
                choices = old.possible_values or []
                assert any(type(value) is type(c) and value == c for c in choices)
            continue
        if old.type not in ("float", "int") or new is None:
            continue
        assert old.low is not None and old.high is not None
        assert new.low is not None and new.high is not None
        if step.rule == "narrow":
            assert _within(new.low, old.low, old.high) and _within(new.high, old.low, old.high)
        elif step.rule == "expand":
            assert new.low <= old.low and new.high >= old.high, step
            limit = again.refine.hard_limits.get(step.param)
            if limit is not None:
                assert limit.low is None or new.low >= min(limit.low, old.low), step
                assert limit.high is None or new.high <= max(limit.high, old.high), step


# ---------------------------------------------------------------------------------------------
# binary metrics


SCORES = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0.0, 1.0)
PERCENTS = st.lists(
    st.sampled_from([0.5, 1, 1.5, 5, 7, 10, 33.3, 50, 100]) | st.floats(0.01, 100.0),
    min_size=1,
    max_size=4,
    unique_by=lambda p: repr(float(p)),
)


@ci(150)
@given(
    st.lists(st.tuples(st.integers(0, 1), SCORES), min_size=1, max_size=200),
    st.floats(0.0, 1.0) | st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0]),
    PERCENTS,
)
@example([(1, 1.0)], 0.5, [100])
@example([(0, 0.5), (1, 0.5)], 0.5, [50])
def test_binary_metrics_are_rates_and_match_counts(
    rows: list[tuple[int, float]], threshold: float, percents: list[float]
) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    m = binary_metrics(y, s, threshold=threshold, top_percents=percents)
    n, n_pos = len(y), int(y.sum())
    counts = {"predicted_positives", "positives", "n"}
    for name, value in m.items():
        assert isinstance(value, float), name
        if name not in counts:
            assert math.isnan(value) or 0.0 <= value <= 1.0, (name, value)
    assert m["n"] == n and m["positives"] == n_pos
    assert m["positive_rate"] == n_pos / n
    predicted = s >= threshold
    assert m["predicted_positives"] == predicted.sum()
    tp = int((predicted & (y == 1)).sum())
    assert _same(m["precision"], tp / predicted.sum() if predicted.sum() else math.nan)
    assert _same(m["recall"], tp / n_pos if n_pos else math.nan)
    order = sorted(range(n), key=lambda i: -s[i])  # stable: ties in input order
    for p in percents:
        label = repr(float(p)).removesuffix(".0")
        k = math.ceil(Fraction(repr(float(p))) * n / 100)  # exact in the decimal written
        top_tp = int(y[order[:k]].sum())
        precision, recall = m[f"precision_top_{label}pct"], m[f"recall_top_{label}pct"]
        assert 1 <= k <= n
        assert _same(precision, top_tp / k), (p, k, precision)
        assert _same(recall, top_tp / n_pos if n_pos else math.nan)
        assert round(precision * k) <= min(k, n_pos)
    # AUC: the share of (positive, negative) pairs ranked right, ties half
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) and len(neg):
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert math.isclose(m["auc"], wins / (len(pos) * len(neg)), abs_tol=1e-12)
    else:
        assert math.isnan(m["auc"])
    assert math.isnan(m["average_precision"]) == (n_pos == 0)
    assert m["score_min"] <= m["score_p50"] <= m["score_max"]
    assert m["score_collapsed"] in (0.0, 1.0)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, abs_tol=1e-12)


def test_refine_drops_checkpoints_past_the_new_budget() -> None:
    """Found by the property above: the refined spec kept `decision.checkpoints` of the old
    sweep while its own n_trials (8 per searched parameter) was smaller, so it did not
    validate and `hpo refine` failed (buy_signals_v1.yaml: checkpoints [60, 120], 7 params)."""
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "cp",
                "n_trials": 250,
                "objective": "synthetic",
                "decision": {"checkpoints": [10, 60, 120]},
                "param_ranges": {
                    "x": {"type": "float", "low": 0.0, "high": 1.0},
                    "y": {"type": "int", "low": 1, "high": 9},
                },
            }
        )
    ).spec
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest_params(trial, spec)
        study.tell(trial, params["x"])
    refinement = refine_spec(analyze_study(study, spec))
    assert refinement.n_trials == 20
    assert refinement.spec.decision.checkpoints == [10]

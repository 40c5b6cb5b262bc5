"""The refinement rules (hpo_core.refine): every fix, drop, narrowing and expansion passes the
corrected test, the minimum effect and the minimum trials per group; expansions move a bound by
one step at most; and every note says the rule that fired or the gate that kept the parameter."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest
import yaml

from hpo_core.analysis import SweepAnalysis, analyze_study
from hpo_core.refine import Refinement, refine_spec
from hpo_core.spec import parse_spec
from hpo_core.study import suggest_params
from hpo_core.testing.planted import (
    LR_OPTIMUM,
    SURFACES,
    planted_spec,
    run_planted_sweep,
    scratch_folder,
)

# What a "keep" note may say kept the parameter: one gate each.
GATES = (
    "underpowered: ",
    "q=",
    "effect ",
    "the narrowed range would",
    "no test of",
    "fewer than 3 elites",
    "the elites do not agree",
    "arm comparison underpowered",
    "no two choices",
    "within noise: ",
)


@pytest.fixture(scope="module")
def planted() -> tuple[SweepAnalysis, Refinement]:
    """80 random trials on the planted surface. Seed 11: the weighted ``mlp`` arm (10% of the
    trials, 2.8% worse) has 8 trials, its difference is significant (q=0.002) and no elite has
    it: only the minimum effect keeps it."""
    surface = SURFACES["static"]
    with scratch_folder() as tmp:
        s = run_planted_sweep(
            planted_spec(surface, "refine", 80, seed=11, sampler="random"),
            f"journal://{tmp / 'refine'}.journal",
        )
        analysis = analyze_study(s.study, s.spec)
        s.handle.dispose()
    return analysis, refine_spec(analysis)


def _step(refinement: Refinement, name: str):  # type: ignore[no-untyped-def]
    return next(st for st in refinement.steps if st.param == name)


def test_a_weighted_near_tie_is_never_dropped(planted: tuple[SweepAnalysis, Refinement]) -> None:
    analysis, refinement = planted
    pair = analysis.effect("encoder").pairs[0]
    assert pair.other == "mlp" and pair.n_other >= 5 and pair.p_adjusted < 0.01
    assert analysis.elites.params["encoder"].convergence == 1.0  # the elites agree on conv
    step = _step(refinement, "encoder")
    assert step.rule == "keep" and refinement.spec.param_ranges["encoder"].choices == [
        "conv",
        "mlp",
    ]
    assert f"effect {pair.relative:.1%} under min_effect 5%" in step.evidence
    assert step.figures["q"] == pytest.approx(pair.p_adjusted)


def test_an_interior_optimum_is_narrowed_around_never_expanded(
    planted: tuple[SweepAnalysis, Refinement],
) -> None:
    analysis, refinement = planted
    step = _step(refinement, "lr")
    new, old = refinement.spec.param_ranges["lr"], analysis.spec.param_ranges["lr"]
    assert step.rule == "narrow" and "narrowed around the peak near" in step.evidence
    assert old.low < new.low < LR_OPTIMUM < new.high < old.high  # both sides moved in


def test_no_effect_parameter_is_touched_and_every_keep_names_its_gate(
    planted: tuple[SweepAnalysis, Refinement],
) -> None:
    _, refinement = planted
    for name in ("act", "dropout", "wd"):
        assert _step(refinement, name).rule == "keep"
    for step in refinement.steps:
        if step.rule == "keep":
            assert step.evidence.startswith("kept: ")
            assert step.evidence.removeprefix("kept: ").startswith(GATES), step.evidence
        else:  # a rule that fired states its figures
            assert "q=" in step.evidence and "effect " in step.evidence, step.evidence
    assert _step(refinement, "optimizer").rule == "drop_choice"  # sgd: 0.10 worse


def test_an_expansion_moves_a_bound_one_step_at_most_never_past_a_hard_limit() -> None:
    """Better toward the high bound of both: a log range of four decades grows by one decade
    (not half the range, two decades); a linear one grows up to its hard limit."""
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "edges",
                "n_trials": 80,
                "objective": "noop",
                "param_ranges": {
                    "x": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
                    "y": {"type": "float", "low": 0.0, "high": 1.0},
                    "z": {"type": "float", "low": 0.0, "high": 1.0},
                },
                "refine": {"hard_limits": {"y": {"high": 1.2}}},
            }
        )
    ).spec
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for _ in range(80):
        trial = study.ask()
        p = suggest_params(trial, spec)
        study.tell(trial, 1.0 + 0.05 * math.log10(p["x"]) + 0.3 * p["y"] + rng.normal(0, 0.02))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refinement = refine_spec(analyze_study(study, spec))
    new = refinement.spec.param_ranges
    assert _step(refinement, "x").rule == "expand" and (new["x"].low, new["x"].high) == (
        1e-6,
        pytest.approx(0.1),
    )
    assert "grows by a decade" in _step(refinement, "x").evidence
    assert _step(refinement, "y").rule == "expand" and new["y"].high == 1.2
    assert _step(refinement, "z").rule == "keep"

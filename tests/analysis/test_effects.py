"""Directionality (hpo_core.analysis.effects): shapes, tests that hold the other parameters fixed,
and one Benjamini-Hochberg family over every test, on planted sweeps and on pure noise."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from hpo_core.analysis import SweepAnalysis, analyze_study
from hpo_core.analysis.report import write_report
from hpo_core.refine import refine_spec
from hpo_core.spec import parse_spec
from hpo_core.study import suggest_params
from hpo_core.testing.planted import (
    LR_OPTIMUM,
    SURFACES,
    planted_spec,
    run_planted_sweep,
    scratch_folder,
)

NO_EFFECT = ("act", "dropout", "wd")


def _planted(sampler: str, seed: int) -> SweepAnalysis:
    surface = SURFACES["static"]
    with scratch_folder() as tmp:
        name = f"effects_{sampler}_{seed}"
        s = run_planted_sweep(
            planted_spec(surface, name, 80, seed=seed, sampler=sampler),
            f"journal://{tmp / name}.journal",
        )
        analysis = analyze_study(s.study, s.spec)
        s.handle.dispose()
    return analysis


@pytest.fixture(scope="module")
def random_sweep() -> SweepAnalysis:
    return _planted("random", 0)


def test_an_interior_optimum_is_a_peak_not_a_trend(
    random_sweep: SweepAnalysis, tmp_path: Path
) -> None:
    lr, width = random_sweep.effect("lr"), random_sweep.effect("width")
    assert lr.shape == "peak" and lr.p_quadratic_adjusted < 1e-6
    assert lr.peak_low < LR_OPTIMUM < lr.peak_high and lr.peak_high / lr.peak_low < 3
    assert width.shape == "increase" and width.peak is None
    write_report(random_sweep, tmp_path, plots=False)
    findings = (tmp_path / "report.md").read_text().split("## Critical findings")[1]
    findings = findings.split("\n## ")[0]
    assert f"`lr` peak near {lr.peak:.3g}" in findings and "`width` INCREASE" in findings
    assert "DECREASE" not in findings


@pytest.fixture(scope="module")
def tpe_sweep() -> SweepAnalysis:
    return _planted("tpe", 2)


def test_a_no_effect_parameter_is_no_effect_under_tpe(tpe_sweep: SweepAnalysis) -> None:
    """TPE learns lr and width, so later trials are better; a parameter without effect drifts
    where TPE's model of it wanders, and tested alone it correlates with the objective (this
    seed: weight decay at adjusted p 4e-12). Held against the other parameters it does not."""
    analysis = tpe_sweep
    for name in NO_EFFECT:
        e = analysis.effect(name)
        assert e.adjusted and e.p_adjusted > 0.05, e
    steps = {st.param: st for st in refine_spec(analysis).steps}
    assert all(steps[name].rule == "keep" for name in NO_EFFECT), steps


def test_an_arm_with_too_few_trials_is_kept_however_bad(tpe_sweep: SweepAnalysis) -> None:
    """TPE soon stops drawing sgd (0.10 worse): a handful of trials, a tiny p-value, a large
    effect, and still too few trials to take the choice away (refine.min_arm_trials)."""
    pair = next(t for t in tpe_sweep.effect("optimizer").pairs if t.other == "sgd")
    assert pair.n_other < 5 and pair.p_adjusted < 1e-6 and pair.relative > 0.1
    step = next(st for st in refine_spec(tpe_sweep).steps if st.param == "optimizer")
    assert (
        step.rule == "keep"
        and "sgd" in refine_spec(tpe_sweep).spec.param_ranges["optimizer"].choices
    )
    assert step.evidence.startswith(f"kept: underpowered: {pair.n_other} trials in 'sgd'")


def _noise_study(seed: int) -> tuple[optuna.Study, object]:
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "noise",
                "n_trials": 60,
                "objective": "noop",
                "param_ranges": {
                    f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(10)
                },
            }
        )
    ).spec
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed))
    for i in range(60):
        trial = study.ask()
        suggest_params(trial, spec)
        if i % 2:  # a warm-started study's trials carry where they came from
            trial.set_user_attr("carried_from", "noise_v0")
        study.tell(trial, 1.0 + rng.normal(0.0, 0.3))
    return study, spec


def test_every_rule_reads_p_values_corrected_over_all_tests() -> None:
    """Ten parameters without effect: two of them pass p < 0.05 by chance (raw p 0.005 and
    0.049); uncorrected, both ranges would be expanded. Corrected, nothing moves."""
    study, spec = _noise_study(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = analyze_study(study, spec)  # type: ignore[arg-type]
    chance = [e for e in analysis.effects if e.p is not None and e.p < 0.05]
    assert len(chance) == 2 and all(e.p_adjusted >= 0.05 for e in chance)
    assert len(analysis.tests) == 20  # a trend and a curvature test per parameter
    steps = {st.param: st for st in refine_spec(analysis).steps}
    assert all(st.rule == "keep" for st in steps.values()), steps
    for e in chance:
        assert f"q={e.p_adjusted:.3g} over 0.05" in steps[e.name].evidence

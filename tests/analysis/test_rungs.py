"""Pruned trials as evidence (hpo_core.analysis.rungs): the value of each trial at each rung, and a
pruned arm judged where it ran, on a planted Hyperband sweep whose bad arm is pruned early."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo_core.analysis import SweepAnalysis, analyze_study
from hpo_core.analysis.importance import importance_level, level_study
from hpo_core.analysis.plots import _survival_plot
from hpo_core.analysis.report import write_report
from hpo_core.analysis.rungs import FINAL, LEVEL, rung_view
from hpo_core.analysis.trials import build_trials_table
from hpo_core.refine import refine_spec
from hpo_core.spec import parse_spec
from hpo_core.testing.planted import SURFACES, planted_spec, run_planted_sweep, scratch_folder


def test_each_trial_counts_at_every_rung_it_reached() -> None:
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "rungs",
                "n_trials": 4,
                "objective": "noop",
                "param_ranges": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            }
        )
    ).spec
    curves = {
        # complete, every step
        "a": (TrialState.COMPLETE, {s: s / 10 for s in range(1, 10)}, 0.95),
        # pruned at 3; no report at step 2
        "b": (TrialState.PRUNED, {1: 0.2, 3: 0.3}, None),
        # pruned at the first rung
        "c": (TrialState.PRUNED, {1: 0.05}, None),
        # pruned at 4, last reported at 2: at rung 3 it has its step-2 value
        "d": (TrialState.PRUNED, {1: 0.1, 2: 0.25, 4: 0.4}, None),
    }
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            create_trial(
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0.0, 1.0)},
                value=value,
                intermediate_values=steps,
                state=state,
            )
            for state, steps, value in curves.values()
        ]
    )
    trials = study.get_trials(deepcopy=False)
    view = rung_view(build_trials_table(trials, spec), trials)
    assert [(r.label, r.reached, r.cut) for r in view.rungs] == [
        ("step 1", 4, 1),
        ("step 3", 3, 1),
        ("step 4", 2, 1),
        (FINAL, 1, 0),
    ]
    by_level = {r.label: view.frame[LEVEL + r.label].tolist() for r in view.rungs}
    nan = pytest.approx(float("nan"), nan_ok=True)
    assert by_level["step 1"] == [0.1, 0.2, 0.05, 0.1]
    assert by_level["step 3"] == [pytest.approx(0.3), 0.3, nan, 0.25]
    assert by_level["step 4"] == [pytest.approx(0.4), nan, nan, 0.4]
    assert by_level[FINAL] == [0.95, nan, nan, nan]
    assert view.levels == [FINAL, "step 4", "step 3", "step 1"]  # deepest first
    # importance: at the deepest level enough trials reached, each completed with its value there
    assert importance_level(view, 3) == "step 3" and importance_level(view, 9) == "step 1"
    at_rung = level_study("maximize", view, "step 3", trials).get_trials()
    assert [(t.state, t.value) for t in at_rung] == [
        (TrialState.COMPLETE, v) for v in (0.3, 0.3, 0.25)
    ]


@pytest.fixture(scope="module")
def pruned_sweep() -> SweepAnalysis:
    """80 random trials on the planted surface under Hyperband (rungs at epochs 1, 3, 9): most
    trials are pruned, ``sgd`` sooner than the others (it learns slower from further down)."""
    surface = SURFACES["epochs"]
    with scratch_folder() as tmp:
        spec = planted_spec(surface, "pruned", 80, seed=0, sampler="random")
        s = run_planted_sweep(spec, f"journal://{tmp / 'pruned'}.journal")
        analysis = analyze_study(s.study, s.spec)
        s.handle.dispose()
    return analysis


def test_a_pruned_arm_is_judged_from_its_pruned_trials(pruned_sweep: SweepAnalysis) -> None:
    a = pruned_sweep
    assert a.summary.pruned > 3 * a.summary.complete
    done = a.table.complete
    assert (done["param.optimizer"] == "sgd").sum() <= 2  # too few completed trials to judge it
    optimizer = a.effect("optimizer")
    assert optimizer.rung != FINAL and optimizer.n_pruned > 0 and not optimizer.underpowered
    assert optimizer.worst_value == "sgd" and optimizer.p_adjusted < 1e-3
    pair = next(t for t in optimizer.pairs if t.other == "sgd")
    assert pair.n_other >= 5 and pair.p_adjusted < 1e-3 and pair.relative > 0.05
    assert pair.worse_everywhere and pair.compared_at == len(a.rungs.rungs)
    steps = {st.param: st for st in refine_spec(a).steps}
    step = steps["optimizer"]
    assert step.rule == "drop_choice" and step.new == "[adamw, rmsprop]", step
    assert all(steps[name].rule == "keep" for name in ("act", "dropout", "wd")), steps
    assert f"at {pair.rung}" in step.evidence and "worse than" in step.evidence
    # how far each arm got: sgd's trials fall away sooner than the others'
    survival = next(sv for sv in a.survival if sv.param == "optimizer")
    share = {g.group: g.reached[1] / g.trials for g in survival.groups}  # at the second rung
    assert share["'sgd'"] < min(share["'adamw'"], share["'rmsprop'"])


def test_the_report_shows_rung_survival(pruned_sweep: SweepAnalysis, tmp_path: Path) -> None:
    files = {p.name for p in write_report(pruned_sweep, tmp_path, plots=False)}
    assert {"survival.csv", "tests.csv"} <= files
    report = (tmp_path / "report.md").read_text()
    assert "## Rung survival" in report and "## Every test" in report
    rung = pruned_sweep.effect("optimizer").rung
    pair = next(t for t in pruned_sweep.effect("optimizer").pairs if t.other == "sgd")
    assert f"| `optimizer` | {pair.leader!r} | 'sgd' |" in report
    assert f"| {rung} | 4 of 4 |" in report
    png = _survival_plot(pruned_sweep)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"

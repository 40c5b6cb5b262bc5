"""Seed noise (hpo_core.analysis.noise): the noise probe at a checkpoint, the estimate it gives on
the planted objective (whose noise sd is known), probes counted once in the tests, effects within
the noise marked in the report and left alone by refine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpo_core.analysis import SweepAnalysis, analyze_study
from hpo_core.analysis.report import write_report
from hpo_core.pipeline import RunPlan, gate
from hpo_core.refine import refine_spec
from hpo_core.spec import LoadedSpec, SweepSpec, parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import (
    ATTR_PROBE_OF,
    ATTR_PROBE_SEED,
    NoiseProbe,
    SweepStudy,
    enqueue_noise_probe,
    load_study,
    suggest_params,
)
from hpo_core.testing.objectives import PLANTED_SPACE
from hpo_core.worker import run_worker

PLANTED_SD = 0.05
K = 8
FIXED_SEED = 7


def planted_spec(name: str) -> LoadedSpec:
    spec = {
        "study_name": name,
        "n_trials": 40,
        "objective": "hpo_core.testing.objectives:planted",
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "fixed": {"seed": FIXED_SEED},
        "param_ranges": PLANTED_SPACE,
        "data": {"seed": 0, "sd": PLANTED_SD},
        "decision": {"checkpoints": [20], "noise_probe": K},
        "worker": {"poll_interval": 0.1},
    }
    return parse_spec(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[SweepStudy, NoiseProbe, NoiseProbe]:
    """40 planted trials: 20, the DAG's gate at the checkpoint queueing the probe (then the probe
    again, as a retried gate would), 20."""
    spec = planted_spec("probed")
    folder = tmp_path_factory.mktemp("noise")
    url = f"journal://{folder / 'probed.journal'}"
    assert run_worker(spec, url, until=20).complete == 20
    sweep = load_study("probed", open_storage(url))
    plan = RunPlan(
        "probed.yaml", "probed.yaml", "probed", 1, "local", 40, True, False, False, [20, 40], ""
    )
    record = gate(plan, 0, storage_url=url)
    assert record["action"] == "continue"
    first = NoiseProbe(**record["noise_probe"])
    again = enqueue_noise_probe(sweep)
    assert again is not None
    waiting = sweep.study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[ATTR_PROBE_SEED] for t in waiting] == first.seeds
    run_worker(spec, url)
    return sweep, first, again


def test_the_probe_queues_the_best_configuration_with_other_seeds(
    probed: tuple[SweepStudy, NoiseProbe, NoiseProbe],
) -> None:
    sweep, first, again = probed
    trials = sweep.study.get_trials()
    best = max(trials[:20], key=lambda t: t.value or 0.0)
    assert first == NoiseProbe(best.number, list(range(FIXED_SEED + 1, FIXED_SEED + 1 + K)), K)
    assert again.queued == 0 and again.seeds == first.seeds  # a retried gate queues nothing
    probes = [t for t in trials if ATTR_PROBE_OF in t.user_attrs]
    assert len(probes) == K and all(t.state == TrialState.COMPLETE for t in probes)
    assert all(
        t.params == best.params and t.user_attrs[ATTR_PROBE_OF] == best.number for t in probes
    )
    # they ran first after the checkpoint, within the budget of 40
    assert [t.number for t in probes] == list(range(20, 20 + K)) and len(trials) == 40


def test_a_probe_runs_with_its_own_seed_and_nothing_else_changed() -> None:
    spec = planted_spec("seeded").spec
    study = optuna.create_study()
    params = {"lr": 1e-3, "width": 1.0, "use_bn": True, "noise": 0.5, "act": "relu"}
    study.enqueue_trial(params, user_attrs={ATTR_PROBE_OF: 3, ATTR_PROBE_SEED: 9})
    study.enqueue_trial(params)
    probe, plain = suggest_params(study.ask(), spec), suggest_params(study.ask(), spec)
    assert probe == {**params, "seed": 9} and plain == {**params, "seed": FIXED_SEED}


def test_the_probe_measures_the_planted_noise_and_counts_the_configuration_once(
    probed: tuple[SweepStudy, NoiseProbe, NoiseProbe],
) -> None:
    sweep, first, _ = probed
    a = analyze_study(sweep.study, sweep.spec)
    noise = a.noise
    assert noise is not None and noise.source == "probe" and (noise.n, noise.dof) == (K + 1, K)
    print(f"planted sd {PLANTED_SD}: estimated {noise.sd:.4f} from {noise.n} runs")
    assert 0.6 * PLANTED_SD < noise.sd < 1.6 * PLANTED_SD
    # the probed configuration is one row of the tests, with the mean of its runs
    assert a.summary.complete == 40 and a.effect("width").n == 40 - K
    runs = [
        t.value
        for t in sweep.study.get_trials()
        if first.of in (t.number, t.user_attrs.get(ATTR_PROBE_OF))
    ]
    assert len(runs) == K + 1
    assert a.table.frame.set_index("number").at[first.of, "value"] != pytest.approx(
        sum(runs) / len(runs)
    )
    # the planted truth: lr's effect is well above the noise, `noise` has none
    assert not noise.param_within_noise("lr") and noise.param_within_noise("noise")


def two_arm_study(spec: SweepSpec, n: int = 40) -> optuna.Study:
    """``b`` true is worth +0.04 (8% relative) with almost no noise, ``x`` nothing: the elites
    all have b true, so refine fixes b unless 0.04 is within the seed noise."""
    study = optuna.create_study(direction="maximize")
    dists = {"x": FloatDistribution(0.0, 1.0), "b": CategoricalDistribution([True, False])}
    for i in range(n):
        b, x = i % 2 == 0, (i * 7 % n) / n
        value = 0.5 + (0.04 if b else 0.0) + 0.001 * ((i * 13) % 5 - 2)
        study.add_trial(
            optuna.create_trial(params={"x": x, "b": b}, distributions=dists, value=value)
        )
    return study


def two_arm_spec(noise_sd: float | None) -> SweepSpec:
    spec: dict[str, Any] = {
        "study_name": "two_arms",
        "n_trials": 40,
        "objective": "synthetic",
        "param_ranges": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "b": {"type": "bool"}},
    }
    if noise_sd is not None:
        spec["analysis"] = {"noise_sd": noise_sd}
    return parse_spec(yaml.safe_dump(spec)).spec


def two_arm_analysis(noise_sd: float | None) -> SweepAnalysis:
    spec = two_arm_spec(noise_sd)
    return analyze_study(two_arm_study(spec), spec)


def test_an_effect_within_the_noise_is_marked_in_the_report(tmp_path: Path) -> None:
    a = two_arm_analysis(0.05)
    assert a.noise is not None and a.noise.source == "spec" and a.noise.sd == 0.05
    assert a.effect("b").p is not None and a.effect("b").p < 1e-6  # significant, but small
    assert a.noise.effects["b"] == pytest.approx(0.04, abs=1e-3) and "b" in a.noise.within
    write_report(a, tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "## Seed noise" in report and "sd 0.05 between seeds" in report
    (row,) = [line for line in report.splitlines() if line.startswith("| `b` | 0.54 | 0.5 |")]
    assert row.endswith("| within noise |")
    # the same sweep with less noise than the effect: not within it
    quiet = two_arm_analysis(0.01)
    assert quiet.noise is not None and "b" not in quiet.noise.within


def test_without_an_estimate_the_report_says_how_to_get_one(tmp_path: Path) -> None:
    a = two_arm_analysis(None)
    assert a.noise is None
    write_report(a, tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "Not measured" in report and "decision.noise_probe" in report
    assert "within noise" not in report


def test_refine_keeps_a_parameter_whose_effect_is_within_the_noise() -> None:
    step = next(s for s in refine_spec(two_arm_analysis(0.05)).steps if s.param == "b")
    assert step.rule == "keep" and "within noise" in step.evidence
    # the same sweep with less noise than the effect: b is fixed
    assert (
        next(s for s in refine_spec(two_arm_analysis(0.01)).steps if s.param == "b").rule == "fix"
    )

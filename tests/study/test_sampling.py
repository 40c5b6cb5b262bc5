"""Sampling follows the spec: conditionals, bounds, and categorical weights (tested statistically)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import optuna
import pytest
import yaml
from scipy import stats

from hpo_core.spec import SweepSpec, parse_spec
from hpo_core.study import ENV_ALLOWED_SEARCH_MODULES, build_sampler, suggest_params
from tests.helpers import base_spec


def _sample(spec_dict: dict[str, Any], n: int) -> list[dict[str, Any]]:
    spec = parse_spec(yaml.safe_dump(spec_dict)).spec
    study = optuna.create_study(sampler=build_sampler(spec), direction=spec.direction)
    out = []
    for _ in range(n):
        trial = study.ask()
        params = suggest_params(trial, spec)
        study.tell(trial, float(params.get("x", 0.0)))
        out.append(params)
    return out


def test_conditionals_and_bounds_are_honoured() -> None:
    spec = base_spec()
    spec["param_ranges"].update(
        {
            "use_cosine": {"type": "bool"},
            "temperature": {
                "type": "float",
                "low": 1.0,
                "high": 30.0,
                "log": True,
                "when": {"use_cosine": True},
            },
            "ctx_layers": {
                "type": "int",
                "low": 1,
                "high": 4,
                "when": {"encoder_type": ["context"]},
            },
        }
    )
    for sampler in ("random", "tpe"):
        spec["sampler"] = {"type": sampler, "seed": 3, "n_startup_trials": 5}
        for params in _sample(spec, 60):
            assert params["epochs"] == 2  # fixed values come along
            assert 0.0 <= params["x"] <= 1.0
            assert ("temperature" in params) == params["use_cosine"]
            if "temperature" in params:
                assert 1.0 <= params["temperature"] <= 30.0
            assert ("depth" in params) == (params["encoder_type"] == "cnn")
            assert ("ctx_layers" in params) == (params["encoder_type"] == "context")
            if "depth" in params:
                assert isinstance(params["depth"], int) and 2 <= params["depth"] <= 6


def test_step_grid_is_honoured() -> None:
    spec = base_spec()
    spec["param_ranges"]["x"] = {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}
    values = {p["x"] for p in _sample(spec, 40)}
    assert values <= {0.0, 0.25, 0.5, 0.75, 1.0}


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_categorical_weights_hold_statistically(sampler: str) -> None:
    spec = base_spec()
    spec["sampler"] = {"type": sampler, "seed": 11, "n_startup_trials": 10}
    spec["param_ranges"]["encoder_type"]["weights"] = [0.75, 0.25]
    n = 400
    counts = Counter(p["encoder_type"] for p in _sample(spec, n))
    # The declared ratio is consistent with the draws...
    assert stats.binomtest(counts["cnn"], n, 0.75).pvalue > 0.001, counts
    # ...and the test has the power to reject the ratio an unweighted sampler would give.
    assert stats.binomtest(counts["cnn"], n, 0.5).pvalue < 1e-6, counts


def test_weighted_draws_repeat_with_the_same_seed() -> None:
    spec = base_spec()
    spec["param_ranges"]["encoder_type"]["weights"] = [0.6, 0.4]
    first = [p["encoder_type"] for p in _sample(spec, 30)]
    second = [p["encoder_type"] for p in _sample(spec, 30)]
    assert first == second


def _two_workers(spec: SweepSpec, n: int) -> list[float]:
    """``n`` trials drawn by two workers, each with its own sampler built from ``spec``,
    taking turns on one study."""
    storage = optuna.storages.InMemoryStorage()
    studies = [
        optuna.create_study(
            study_name="s",
            storage=storage,
            sampler=build_sampler(spec),
            direction="maximize",
            load_if_exists=True,
        )
        for _ in range(2)
    ]
    drawn = []
    for number in range(n):
        study = studies[number % 2]
        trial = study.ask()
        drawn.append(suggest_params(trial, spec)["x"])
        study.tell(trial, math.sin(40 * drawn[-1]))  # no optimum on a bound to draw twice
    return drawn


# every built-in sampler that takes a seed (all of them) and a spec's own class that does
SEEDED = [
    {"type": "tpe", "n_startup_trials": 2},
    {"type": "random"},
    {"type": "cmaes", "n_startup_trials": 2},
    {"type": "qmc", "options": {"scramble": True}},  # the seed scrambles the sequence
    {"type": "gp", "n_startup_trials": 4},  # one GP fit a run: the slow one
    # a genetic algorithm may copy a parent exactly: one generation, drawn at random
    {"type": "nsga2", "options": {"population_size": 10}},
    {"type": "tests.study.search_classes:JitterSampler"},
]


@pytest.mark.parametrize("sampler", SEEDED, ids=lambda s: s["type"].rpartition(":")[2])
def test_workers_with_the_same_seed_do_not_repeat_each_other(
    sampler: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers build their samplers from one spec (same seed) and share one study: every
    trial still gets its own draw, past the start-up trials too, and a rerun draws the same."""
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, "tests.study.search_classes")
    spec = parse_spec(yaml.safe_dump(base_spec(sampler={**sampler, "seed": 3}))).spec
    drawn = _two_workers(spec, 5)
    assert len(set(drawn)) == 5, drawn
    assert _two_workers(spec, 5) == drawn
    if sampler["type"] == "qmc":  # without a seed, the workers still share one sequence
        unseeded = parse_spec(yaml.safe_dump(base_spec(sampler=sampler))).spec
        assert _two_workers(unseeded, 4)[1:] == _two_workers(unseeded, 4)[1:]
    if sampler["type"] != "tpe":
        return
    # trial k's draw does not depend on which worker ran it
    again = optuna.create_study(sampler=build_sampler(spec), direction="maximize")
    solo = []
    for _ in range(5):
        trial = again.ask()
        solo.append(suggest_params(trial, spec)["x"])
        again.tell(trial, math.sin(40 * solo[-1]))
    assert solo == drawn

"""Warm starts: a new study begins with the finished trials of an earlier one that fit its space."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from hpo_core.errors import StudyError
from hpo_core.spec import SweepSpec, parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import (
    ATTR_CARRIED_FROM,
    carry_trials,
    create_study,
    fit_trial,
    load_study,
    set_budget,
    study_progress,
    warm_start_of,
)
from hpo_core.study.warm import param_distribution
from hpo_core.testing.objectives import PLANTED_SPACE
from hpo_core.worker import run_worker

OLD_RANGES: dict[str, Any] = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "encoder_type": {"type": "categorical", "choices": ["cnn", "context"]},
    "depth": {"type": "int", "low": 2, "high": 6, "when": {"encoder_type": "cnn"}},
}
# refined: x narrowed, the switch fixed to cnn (depth loses its condition), depth narrowed
NEW_RANGES: dict[str, Any] = {
    "x": {"type": "float", "low": 0.2, "high": 0.8},
    "depth": {"type": "int", "low": 2, "high": 4},
}


def _spec(name: str, ranges: dict[str, Any], fixed: dict[str, Any], **extra: Any) -> SweepSpec:
    return _loaded(name, ranges, fixed, **extra).spec


def _loaded(name: str, ranges: dict[str, Any], fixed: dict[str, Any], **extra: Any) -> Any:
    spec = {
        "study_name": name,
        "n_trials": 10,
        "objective": "synthetic",
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "fixed": fixed,
        "param_ranges": ranges,
        "worker": {"poll_interval": 0.05},
        **extra,
    }
    return parse_spec(yaml.safe_dump(spec, sort_keys=False))


def _trial(params: dict[str, Any], state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    spec = _spec("old", OLD_RANGES, {"epochs": 2})
    value = 0.5 if state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions={p: param_distribution(spec.param_ranges[p]) for p in params},
    )


CNN = {"x": 0.5, "encoder_type": "cnn", "depth": 3}
CONTEXT = {"x": 0.5, "encoder_type": "context"}


@pytest.mark.parametrize(
    ("params", "new_ranges", "new_fixed", "expected"),
    [
        (CNN, NEW_RANGES, {"epochs": 2, "encoder_type": "cnn"}, {"x": 0.5, "depth": 3}),
        ({**CNN, "x": 0.9}, NEW_RANGES, {"epochs": 2, "encoder_type": "cnn"}, "x is outside"),
        ({**CNN, "depth": 6}, NEW_RANGES, {"epochs": 2, "encoder_type": "cnn"}, "depth is outside"),
        (CONTEXT, NEW_RANGES, {"epochs": 2, "encoder_type": "cnn"}, "encoder_type is fixed"),
        (CNN, OLD_RANGES, {"epochs": 3}, "epochs is fixed to 3 now"),
        # the old fixed epochs=2 is set by nobody now: new trials would run another default
        (CNN, OLD_RANGES, {}, "epochs is not set by the new spec"),
        # a new parameter: the trial has no value for it
        (CNN, {**OLD_RANGES, "y": {"type": "bool"}}, {"epochs": 2}, "y is new to the space"),
        # a fixed value the trial had none for (depth, unused by the context arm) fits
        (
            CONTEXT,
            {k: v for k, v in OLD_RANGES.items() if k != "depth"},
            {"epochs": 2, "depth": 4},
            {"x": 0.5, "encoder_type": "context"},
        ),
        # a value fixed in the old spec and searched in the new one becomes a parameter
        (CNN, {**OLD_RANGES, "epochs": {"type": "int", "low": 1, "high": 4}}, {}, None),
    ],
)
def test_a_trial_fits_the_new_space_by_each_rule(
    params: dict[str, Any], new_ranges: dict[str, Any], new_fixed: dict[str, Any], expected: Any
) -> None:
    old, new = _spec("old", OLD_RANGES, {"epochs": 2}), _spec("new", new_ranges, new_fixed)
    fitted = fit_trial(_trial(params), old, new)
    if expected is None:
        assert fitted == {**params, "epochs": 2}
    elif isinstance(expected, dict):
        assert fitted == expected
        assert all(type(fitted[k]) is type(v) for k, v in expected.items())
    else:
        assert isinstance(fitted, str) and fitted.startswith(expected)


@pytest.fixture(params=["journal", "postgres"])
def storage_url(request: pytest.FixtureRequest, journal_url: str) -> str:
    if request.param == "journal":
        return journal_url
    return str(request.getfixturevalue("pg_url"))


def _old_study(url: str) -> Any:
    """A finished study built by hand: every state, values, intermediate values, attributes."""
    old = create_study(_loaded("old", OLD_RANGES, {"epochs": 2}), open_storage(url))
    start = datetime(2026, 1, 5, 12, 0, 0)

    def add(params: dict[str, Any], state: TrialState, **kw: Any) -> None:
        trial = optuna.trial.create_trial(
            state=state,
            params=params,
            distributions={p: param_distribution(old.spec.param_ranges[p]) for p in params},
            **kw,
        )
        trial.datetime_start = start
        trial.datetime_complete = start + timedelta(minutes=7) if state.is_finished() else None
        old.study.add_trial(trial)

    curve = {1: 0.31, 2: 0.52}
    attrs = {"chance_level": 0.1, "worker": {"gpus": ["0"]}, "sweepflow.checkpoint": "gone"}
    add(CNN, TrialState.COMPLETE, value=0.61, intermediate_values=curve, user_attrs=attrs)  # fits
    add({**CNN, "x": 0.3, "depth": 2}, TrialState.PRUNED, intermediate_values={1: 0.2})  # fits
    add({**CNN, "x": 0.9}, TrialState.COMPLETE, value=0.7)  # x outside
    add(CONTEXT, TrialState.COMPLETE, value=0.65)  # encoder_type fixed away
    add({**CNN, "depth": 6}, TrialState.COMPLETE, value=0.4)  # depth outside
    add(CNN, TrialState.FAIL)  # failed: never carried
    add(CNN, TrialState.RUNNING)  # running: never carried
    add({**CNN, "x": 0.4, "depth": 4}, TrialState.COMPLETE, value=0.55)  # fits
    return old


def test_the_new_study_gets_exactly_the_finished_trials_that_fit(storage_url: str) -> None:
    old = _old_study(storage_url)
    new_loaded = _loaded(
        "new",
        NEW_RANGES,
        {"epochs": 2, "encoder_type": "cnn"},
        warm_start={"study": "old"},
    )
    new = create_study(new_loaded, open_storage(storage_url))
    carried = new.study.get_trials()
    assert [t.user_attrs[ATTR_CARRIED_FROM] for t in carried] == [
        {"study": "old", "number": n} for n in (0, 1, 7)
    ]
    first, pruned, last = carried
    source = old.study.get_trials()
    # states, values, intermediate values, attributes and times are the original's
    assert (first.state, first.value, first.intermediate_values) == (
        TrialState.COMPLETE,
        0.61,
        {1: 0.31, 2: 0.52},
    )
    assert (pruned.state, pruned.value, pruned.intermediate_values) == (
        TrialState.PRUNED,
        None,
        {1: 0.2},
    )
    assert first.params == {"x": 0.5, "depth": 3} and last.params == {"x": 0.4, "depth": 4}
    assert first.user_attrs["chance_level"] == 0.1 and first.user_attrs["worker"]["gpus"] == ["0"]
    assert "sweepflow.checkpoint" not in first.user_attrs
    assert first.duration == source[0].duration == timedelta(minutes=7)
    # the new space's distributions
    assert first.distributions == {
        "x": optuna.distributions.FloatDistribution(0.2, 0.8),
        "depth": optuna.distributions.IntDistribution(2, 4),
    }
    record = warm_start_of(new)
    assert record is not None
    assert (record.study, record.carried, record.complete, record.pruned) == ("old", 3, 2, 1)
    assert record.skipped == {
        "x is outside the new space": 1,
        "encoder_type is fixed to 'cnn' now": 1,
        "depth is outside the new space": 1,
        "fail": 1,
        "running": 1,
    }
    # a copy interrupted before its record is finished by the next caller, nothing twice
    again = carry_trials(old.study, old.spec, new.study, new.spec)
    assert (again.carried, again.copied) == (3, 0)
    assert len(new.study.get_trials()) == 3
    # the budget is the new trials'
    progress = study_progress(new)
    assert (progress.finished, progress.carried, progress.complete) == (0, 3, 2)
    assert set_budget(new, 1) == (10, 1)  # 3 carried, none run: 1 is not below the finished


def _planted(name: str, ranges: dict[str, Any], n: int, **extra: Any) -> Any:
    spec = {
        "study_name": name,
        "n_trials": n,
        "objective": "hpo_core.testing.objectives:planted",
        "sampler": {"type": "tpe", "seed": 3, "n_startup_trials": 5},
        "pruner": {"type": "none"},
        "param_ranges": ranges,
        "worker": {"poll_interval": 0.05},
        **extra,
    }
    return parse_spec(yaml.safe_dump(spec, sort_keys=False))


NARROWED = {**PLANTED_SPACE, "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}


@pytest.fixture(scope="module")
def planted_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"journal://{Path(tmp_path_factory.mktemp('warm')) / 'studies.journal'}"
    run_worker(_planted("flat", PLANTED_SPACE, 30), url)
    return url


def _fitting(url: str) -> int:
    flat = load_study("flat", open_storage(url))
    return sum(1e-3 <= t.params["lr"] <= 1e-2 for t in flat.study.get_trials())


def test_two_workers_copy_once_and_the_budget_counts_new_trials(
    planted_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpo_core.study.study as study_module

    def slow_copy(*args: Any) -> Any:  # a copy that takes a while: the other worker must wait
        time.sleep(0.3)
        return carry_trials(*args)

    monkeypatch.setattr(study_module, "carry_trials", slow_copy)
    fitting = _fitting(planted_url)
    assert 3 <= fitting < 30
    loaded = _planted("next", NARROWED, 8, warm_start={"study": "flat"})
    reports: list[Any] = []
    together = threading.Barrier(2)

    def worker() -> None:
        together.wait()  # both create the study at once
        reports.append(run_worker(loaded, planted_url))

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sum(r.complete for r in reports) == 8  # the budget: new trials only
    assert all(r.stop_reason == "study budget of 8 trials used" for r in reports)
    run_worker(loaded, planted_url)  # a restart copies nothing again and runs nothing
    sweep = load_study("next", open_storage(planted_url))
    trials = sweep.study.get_trials()
    carried = [t for t in trials if ATTR_CARRIED_FROM in t.user_attrs]
    assert len(carried) == fitting and len(trials) == fitting + 8
    numbers = [t.user_attrs[ATTR_CARRIED_FROM]["number"] for t in carried]
    assert len(set(numbers)) == len(numbers)
    # carried trials come first; new ones are sampled with their distributions
    assert [t.number for t in carried] == list(range(fitting))
    assert all(t.distributions == carried[0].distributions for t in trials)


def test_checkpoints_count_new_trials_and_a_bad_source_leaves_nothing(planted_url: str) -> None:
    loaded = _planted("gated", NARROWED, 6, warm_start={"study": "flat"})
    report = run_worker(loaded, planted_url, until=2)
    assert report.complete == 2 and report.stop_reason == "checkpoint of 2 finished trials reached"
    handle = open_storage(planted_url)
    names = {s.study_name for s in optuna.get_all_study_summaries(handle.storage)}
    other = _planted("other", NARROWED, 6, warm_start={"study": "flta"}, metric="loss")
    with pytest.raises(StudyError, match=r"^warm_start.study: no study named 'flta'.*'flat'"):
        create_study(other, handle)
    with pytest.raises(StudyError, match=r"^warm_start.study: .*metric 'value' vs 'loss'"):
        create_study(
            _planted("other", NARROWED, 6, warm_start={"study": "flat"}, metric="loss"), handle
        )
    with pytest.raises(StudyError, match=r"^--warm-start-from: study 'gated' exists already"):
        create_study(_planted("gated", NARROWED, 6), handle, warm_start="next")
    assert {s.study_name for s in optuna.get_all_study_summaries(handle.storage)} == names


def test_a_noise_probe_finds_room_in_a_warm_started_budget(planted_url: str) -> None:
    from hpo_core.study import enqueue_noise_probe

    handle = open_storage(planted_url)
    sweep = create_study(_planted("probed", NARROWED, 2, warm_start={"study": "flat"}), handle)
    assert study_progress(sweep).carried > 2  # more carried trials than the budget
    probe = enqueue_noise_probe(sweep, 2)
    assert probe is not None and probe.queued == 2

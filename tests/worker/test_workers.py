"""Workers against real storages: exact study-wide budgets, dead workers, stop files, failures.

Workers run as separate `hpo worker` processes, exactly as a local sweep or a pod runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import (
    base_spec,
    count_states,
    run_hpo,
    slow_spec,
    start_worker,
    study_trials,
    wait_workers,
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["journal", "postgres"])
def storage_url(request: pytest.FixtureRequest, journal_url: str) -> str:
    return journal_url if request.param == "journal" else str(request.getfixturevalue("pg_url"))


def test_three_workers_reach_exactly_n_trials(
    storage_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(slow_spec(n_trials=12, data={"seconds": 0.3}))
    wait_workers([start_worker(config, storage_url) for _ in range(3)])
    trials = study_trials(storage_url)
    assert count_states(trials) == {TrialState.COMPLETE: 12}
    # they ran at once (a worker that starts late on a loaded machine may find the budget taken)
    assert len({t.user_attrs["worker"]["id"] for t in trials}) >= 2


def test_eight_workers_never_overshoot_on_postgres(
    pg_url: str, write_spec: Callable[..., Path]
) -> None:
    # Optuna's MaxTrialsCallback overshoots here; the reservation under an advisory lock must not.
    config = write_spec(slow_spec(n_trials=24, data={"seconds": 0.05}))
    wait_workers([start_worker(config, pg_url) for _ in range(8)])
    assert count_states(study_trials(pg_url)) == {TrialState.COMPLETE: 24}
    # A restarted worker on a finished study runs nothing.
    wait_workers([start_worker(config, pg_url)])
    assert len(study_trials(pg_url)) == 24


def test_failed_trials_are_recorded_and_do_not_use_the_budget(
    storage_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:fails_when", n_trials=8, data={"threshold": 0.5}
        )
    )
    wait_workers([start_worker(config, storage_url)])
    trials = study_trials(storage_url)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(finished) == 8
    assert failed and all(t.params["x"] > 0.5 for t in failed)
    assert all(t.user_attrs["fail_reason"].startswith("RuntimeError: x=") for t in failed)
    assert all("Traceback" in t.user_attrs["fail_traceback"] for t in failed)


def test_failure_limit_stops_the_worker(journal_url: str, write_spec: Callable[..., Path]) -> None:
    config = write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:fails_when",
            n_trials=50,
            data={"threshold": -1.0},
            worker={"max_failed_trials": 3},
        )
    )
    result = run_hpo("worker", "--config", str(config), env={"HPO_STORAGE_URL": journal_url})
    assert result.returncode == 0, result.stderr
    assert "3 failed trials (limit 3)" in result.stderr
    assert count_states(study_trials(journal_url)) == {TrialState.FAIL: 3}


def test_stop_file_finishes_the_current_trial_then_exits(
    storage_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_spec(slow_spec(n_trials=200, data={"seconds": 0.3}))
    stop = tmp_path / "stop.flag"
    procs = [start_worker(config, storage_url, "--stop-file", str(stop)) for _ in range(2)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [t for t in _trials_if_any(storage_url) if t.state == TrialState.COMPLETE]
        if len(done) >= 2:
            break
        time.sleep(0.2)
    stop.touch()
    logs = wait_workers(procs, timeout=30)
    assert all(f"stop file {stop} present" in log for log in logs)
    states = count_states(study_trials(storage_url))
    assert TrialState.RUNNING not in states and TrialState.FAIL not in states
    assert 2 <= states[TrialState.COMPLETE] < 200


def _trials_if_any(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return study_trials(url)
    except Exception:  # the study may not exist yet while workers start
        return []


def test_sigterm_is_graceful(journal_url: str, write_spec: Callable[..., Path]) -> None:
    config = write_spec(slow_spec(n_trials=100, data={"seconds": 1.0}))
    proc = start_worker(config, journal_url)
    deadline = time.monotonic() + 60
    while not any(t.state == TrialState.RUNNING for t in _trials_if_any(journal_url)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    wait_workers([proc], timeout=30)
    states = count_states(study_trials(journal_url))
    assert states == {TrialState.COMPLETE: states[TrialState.COMPLETE]}  # finished, not failed


def _kill_one_mid_trial(marker_dir: Path, procs: list[subprocess.Popen[str]]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        markers = list(marker_dir.iterdir())
        if markers:
            pid = int(markers[0].read_text())
            assert pid in {p.pid for p in procs}
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.05)
    raise AssertionError("no worker started a trial")


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_killed_worker_trial_is_failed_and_retried(
    kind: str, request: pytest.FixtureRequest, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    url = request.getfixturevalue("journal_url" if kind == "journal" else "pg_url")
    markers = tmp_path / "markers"
    markers.mkdir()
    config = write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:touch_and_sleep",
            n_trials=6,
            data={"marker_dir": str(markers), "seconds": 1.5},
            worker={"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.5},
        )
    )
    procs = [start_worker(config, url) for _ in range(3)]
    killed = _kill_one_mid_trial(markers, procs)
    survivors = [p for p in procs if p.pid != killed]
    wait_workers(survivors)
    procs[[p.pid for p in procs].index(killed)].wait()
    trials = study_trials(url)
    states = count_states(trials)
    assert states == {TrialState.COMPLETE: 6, TrialState.FAIL: 1}, states
    dead = next(t for t in trials if t.state == TrialState.FAIL)
    assert dead.user_attrs["worker"]["pid"] == killed
    cause = "dead worker: its process" if kind == "journal" else "heartbeat: none for"
    assert dead.user_attrs["lost_cause"].startswith(cause)
    # the dead trial's parameters were queued again and run by a surviving worker
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == dead.params
    assert "fail_reason" not in retried[0].user_attrs
    assert retried[0].user_attrs["worker"]["pid"] != killed  # tagged by the worker that ran it


def test_worker_refuses_an_objective_it_cannot_import(
    journal_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(base_spec(objective="no_such_pkg.mod:fn"))
    result = run_hpo("worker", "--config", str(config), env={"HPO_STORAGE_URL": journal_url})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: objective: cannot import 'no_such_pkg.mod'")
    assert "Traceback" not in result.stderr
    assert not Path(journal_url.removeprefix("journal://")).exists()  # nothing was created


@pytest.mark.postgres
def test_workers_stop_exactly_at_a_checkpoint_then_go_on(
    pg_url: str, write_spec: Callable[..., Path]
) -> None:
    """`--until N`: every worker stops once the study has N finished trials (the mid-sweep
    gate's checkpoint); started again without it, they finish the budget, never more."""
    config = write_spec(slow_spec(n_trials=9))
    wait_workers([start_worker(config, pg_url, "--until", "5") for _ in range(3)])
    first = study_trials(pg_url)
    assert count_states(first) == {TrialState.COMPLETE: 5}
    wait_workers([start_worker(config, pg_url) for _ in range(3)])
    assert count_states(study_trials(pg_url)) == {TrialState.COMPLETE: 9}

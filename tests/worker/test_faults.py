"""Faults injected for real: PostgreSQL restarted under running workers, diverging and
out-of-memory trials, trials left RUNNING by killed workers and cleaned up."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo_core.spec import load_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from hpo_core.testing import running_postgres
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


def _sleepers(
    write_spec: Callable[..., Path], markers: Path, n_trials: int, seconds: float
) -> Path:
    """A spec whose trials write a marker file, then sleep: tests see which are mid-trial."""
    markers.mkdir()
    return write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:touch_and_sleep",
            n_trials=n_trials,
            data={"marker_dir": str(markers), "seconds": seconds},
        )
    )


def _wait_for_markers(markers: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(list(markers.iterdir())) < n and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.postgres
def test_workers_ride_out_a_postgres_restart(write_spec: Callable[..., Path]) -> None:
    """The server goes down for 3 s under 2 workers mid-sweep: they log, wait, reconnect, and
    the study ends with exactly n_trials finished, none lost, none twice, none RUNNING."""
    with running_postgres() as server:
        url = server.create_database("restart")
        # A short grace period: a trial orphaned by the restart is failed and retried in seconds.
        config = write_spec(
            slow_spec(
                n_trials=16,
                data={"seconds": 0.4},
                worker={"heartbeat_interval": 2, "grace_period": 10},
            )
        )
        procs = [start_worker(config, url) for _ in range(2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                done = [t for t in study_trials(url) if t.state == TrialState.COMPLETE]
            except Exception:
                done = []
            if len(done) >= 3:
                break
            time.sleep(0.2)
        began = time.monotonic()
        server.restart(down_seconds=3)
        logs = wait_workers(procs, timeout=240)
        recovered = time.monotonic() - began
        trials = study_trials(url)
    states = count_states(trials)
    assert states.get(TrialState.COMPLETE, 0) == 16, states
    assert TrialState.RUNNING not in states
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    joined = "\n".join(logs)
    assert "storage unreachable during" in joined and "storage reachable again" in joined
    assert recovered < 120, recovered


@pytest.mark.postgres
def test_a_running_trial_that_never_sent_a_heartbeat_is_failed_and_retried(
    pg_url: str, write_spec: Callable[..., Path]
) -> None:
    """A reservation that created its trial and then lost the connection leaves a RUNNING trial
    no worker runs and that never beats. Optuna's stale check skips it; before this was handled
    the last worker waited on it for ever (a CI run hung after a PostgreSQL restart)."""
    config = write_spec(slow_spec(n_trials=4, worker={"heartbeat_interval": 1, "grace_period": 2}))
    sweep = create_study(load_spec(config), open_storage(pg_url))
    orphan = sweep.handle.storage.create_new_trial(sweep.study_id)
    sweep.handle.dispose()
    (log,) = wait_workers([start_worker(config, pg_url)], timeout=90)
    trials = study_trials(pg_url)
    assert count_states(trials) == {TrialState.COMPLETE: 4, TrialState.FAIL: 1}, log[-2000:]
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed._trial_id == orphan
    assert failed.user_attrs["lost_cause"].startswith("orphan: never sent a heartbeat")
    cleanup = run_hpo("cleanup", "test_study", env={"HPO_STORAGE_URL": pg_url})
    assert cleanup.returncode == 0 and "no stale trials" in cleanup.stdout, cleanup.stdout


def test_a_diverging_trial_is_pruned_with_its_reason_and_the_worker_goes_on(
    journal_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:diverges_when",
            n_trials=6,
            data={"threshold": 0.5},
            param_ranges={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        )
    )
    (log,) = wait_workers([start_worker(config, journal_url)])
    trials = study_trials(journal_url)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 6
    assert all(t.params["x"] > 0.5 for t in pruned)
    assert all("diverged: training loss is nan" in t.user_attrs["prune_reason"] for t in pruned)
    assert "PRUNED" in log and "Traceback" not in log


def test_an_out_of_memory_trial_fails_with_its_reason_and_the_worker_goes_on(
    journal_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(
        base_spec(
            objective="hpo_core.testing.objectives:out_of_memory_when",
            n_trials=5,
            data={"threshold": 0.5},
            param_ranges={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        )
    )
    wait_workers([start_worker(config, journal_url)])
    trials = study_trials(journal_url)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and count_states(trials)[TrialState.COMPLETE] == 5
    assert all(
        t.user_attrs["fail_reason"].startswith("MemoryError: Unable to allocate") for t in failed
    )


def test_cleanup_loses_and_requeues_trials_of_killed_workers_once_and_says_so(
    journal_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    config = _sleepers(write_spec, markers, 4, 60)
    procs = [start_worker(config, journal_url) for _ in range(2)]
    _wait_for_markers(markers, 2)
    for proc in procs:  # every worker dies mid-trial: nobody is left to fail their trials
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert count_states(study_trials(journal_url)) == {TrialState.RUNNING: 2}
    env = {"HPO_STORAGE_URL": journal_url}
    dry = run_hpo("cleanup", "test_study", "--dry-run", env=env)
    assert dry.returncode == 0 and "would mark lost 2 stale trial(s)" in dry.stdout, dry.stdout
    assert count_states(study_trials(journal_url)) == {TrialState.RUNNING: 2}
    first = run_hpo("cleanup", "test_study", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("RUNNING -> lost (its worker process") == 2
    trials = study_trials(journal_url)
    assert count_states(trials) == {TrialState.FAIL: 2, TrialState.WAITING: 2}  # lost, and re-queued
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["lost_cause"].startswith("cleaned up by hpo cleanup: ") for t in lost)
    again = run_hpo("cleanup", "test_study", env=env)
    assert again.returncode == 0 and "no stale trials; 0 running" in again.stdout


def test_cleanup_leaves_live_trials_alone(
    journal_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    config = _sleepers(write_spec, markers, 1, 4)
    proc = start_worker(config, journal_url)
    _wait_for_markers(markers, 1)
    result = run_hpo("cleanup", "test_study", env={"HPO_STORAGE_URL": journal_url})
    assert result.returncode == 0 and "no stale trials; 1 running" in result.stdout
    wait_workers([proc])
    assert count_states(study_trials(journal_url)) == {TrialState.COMPLETE: 1}


def test_cleanup_of_a_missing_study_is_one_line(journal_url: str) -> None:
    result = run_hpo("cleanup", "nope", env={"HPO_STORAGE_URL": journal_url})
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_cleanup_on_postgres_judges_heartbeats_by_the_spec_of_the_study(
    pg_url: str, write_spec: Callable[..., Path]
) -> None:
    """`hpo cleanup` opens the storage without heartbeats of its own; it still fails a trial whose
    heartbeat stopped and one that never sent one (both older than the spec's grace period of
    60 s, back-dated by an hour), and leaves a trial with a fresh heartbeat alone."""
    import sqlalchemy

    config = write_spec(slow_spec(n_trials=4))
    sweep = create_study(load_spec(config), open_storage(pg_url))
    storage = sweep.handle.storage
    silent, orphan, live = (storage.create_new_trial(sweep.study_id) for _ in range(3))
    storage.record_heartbeat(silent)
    with storage.engine.begin() as conn:
        hour = "INTERVAL '1 hour'"
        conn.execute(sqlalchemy.text(f"UPDATE trials SET datetime_start = datetime_start - {hour}"))
        conn.execute(sqlalchemy.text(f"UPDATE trial_heartbeats SET heartbeat = heartbeat - {hour}"))
    storage.record_heartbeat(live)
    sweep.handle.dispose()
    env = {"HPO_STORAGE_URL": pg_url}
    result = run_hpo("cleanup", "test_study", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("RUNNING -> lost (no heartbeat within the grace period)") == 2
    assert "marked lost 2 stale trial(s); 1 still running" in result.stdout, result.stdout
    trials = study_trials(pg_url)
    states = {t._trial_id: t.state for t in trials if t.state != TrialState.WAITING}
    assert states == {silent: TrialState.FAIL, orphan: TrialState.FAIL, live: TrialState.RUNNING}
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["lost_cause"].startswith("cleaned up by hpo cleanup: ") for t in lost)
    assert count_states(trials)[TrialState.WAITING] == 2
    again = run_hpo("cleanup", "test_study", env=env)
    assert "no stale trials; 1 running" in again.stdout, again.stdout

"""Lost is not failed: a trial ended by the infrastructure is recorded with its cause, re-queued
with what it had done up to its checkpoint, and counted apart from trials that failed by
themselves, on the journal and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import signal
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from hpo_core.analysis import build_trials_table, decide
from hpo_core.pipeline import finish_alerts, finish_sweep
from hpo_core.spec import LoadedSpec, parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import (
    ATTR_N_TRIALS,
    ATTR_STOP,
    SweepStudy,
    create_study,
    load_study,
    study_progress,
)
from hpo_core.testing import PostgresServer
from hpo_core.worker import run_worker
from hpo_core.worker.lost import lose_trial
from tests.helpers import base_spec, run_plan


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def sweep(request: pytest.FixtureRequest, journal_url: str) -> SweepStudy:
    url = journal_url if request.param == "journal" else request.getfixturevalue("pg_url")
    loaded = parse_spec(yaml.safe_dump(base_spec()))
    made = create_study(loaded, open_storage(url))
    request.addfinalizer(made.handle.dispose)
    return made


def _running(sweep: SweepStudy, steps: int, checkpoint: int | None) -> int:
    trial = sweep.study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    for step in range(steps):
        trial.report(float(step) / 10, step)
    trial.set_user_attr("note", "kept")
    trial.set_user_attr("worker", {"id": "w", "host": "h", "pid": 1, "gpus": ["0"]})
    trial.set_user_attr("fail_reason", "from an ancestor")
    if checkpoint is not None:
        ckpt = {"epoch": checkpoint, "artifact_id": "a1", "origin": trial.number}
        trial.set_user_attr("sweepflow.checkpoint", ckpt)
    return trial._trial_id


def _waiting(sweep: SweepStudy) -> list:  # type: ignore[type-arg]
    return sweep.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_a_lost_trial_is_failed_with_its_cause_and_re_queued_up_to_its_checkpoint(
    sweep: SweepStudy,
) -> None:
    trial_id = _running(sweep, steps=5, checkpoint=2)
    cause = "heartbeat: none for 9s (grace period 3s)"
    assert lose_trial(sweep.study, trial_id, cause, max_retry=1)
    lost = sweep.study._storage.get_trial(trial_id)
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["lost_cause"] == lost.user_attrs["fail_reason"] == cause
    [copy] = _waiting(sweep)
    assert copy.params == lost.params and copy.distributions == lost.distributions
    # its own ending and its worker stay behind; the checkpoint goes with it
    assert copy.user_attrs == {
        "note": "kept",
        "sweepflow.checkpoint": lost.user_attrs["sweepflow.checkpoint"],
    }
    assert copy.system_attrs["failed_trial"] == lost.number
    assert copy.system_attrs["retry_history"] == [lost.number]
    assert copy.intermediate_values == {0: 0.0, 1: 0.1, 2: 0.2}  # steps 3, 4 were not saved
    # a second checker finding the same trial does nothing
    assert not lose_trial(sweep.study, trial_id, cause, max_retry=1)
    assert len(_waiting(sweep)) == 1

    # the copy runs (with the steps it inherited) and is lost again: past max_retry, no copy
    again = sweep.study.ask()
    assert again.number == copy.number and again.params == lost.params
    assert lose_trial(sweep.study, again._trial_id, "preempted: SIGTERM", max_retry=1)
    assert _waiting(sweep) == []
    second = sweep.study._storage.get_trial(again._trial_id)
    assert (
        second.state == TrialState.FAIL and second.user_attrs["lost_cause"] == "preempted: SIGTERM"
    )

    # without a checkpoint, nothing reported is inherited
    bare = _running(sweep, steps=3, checkpoint=None)
    assert lose_trial(sweep.study, bare, "orphan: never sent a heartbeat", max_retry=None)
    [fresh] = _waiting(sweep)
    assert fresh.intermediate_values == {} and "sweepflow.checkpoint" not in fresh.user_attrs

    # the budget's snapshot and the progress count lost trials apart from failed ones
    done = sweep.study.ask()
    sweep.study.tell(done, state=TrialState.FAIL)
    with sweep.handle.reservation(sweep.name, sweep.study_id, (ATTR_N_TRIALS, ATTR_STOP)) as snap:
        assert snap.counts["FAIL"] == 4 and snap.lost == 3
    progress = study_progress(sweep)
    assert (progress.failed, progress.lost, progress.failure_rate) == (1, 3, 1.0)
    assert "1 failed, 3 lost, 0 running" in progress.line()


def test_a_finished_trial_is_not_lost(sweep: SweepStudy) -> None:
    trial = sweep.study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    sweep.study.tell(trial, 0.5)
    assert not lose_trial(sweep.study, trial._trial_id, "heartbeat: late", max_retry=None)
    stored = sweep.study._storage.get_trial(trial._trial_id)
    assert stored.state == TrialState.COMPLETE and "lost_cause" not in stored.user_attrs
    assert _waiting(sweep) == []


# -- the gate: workers killed vs trials raising ---------------------------------------------------


def _fork_worker(loaded: LoadedSpec, url: str) -> multiprocessing.process.BaseProcess:
    """A worker in a forked process (no interpreter start-up: the sweep's 10 workers cost what
    one does), with two GPUs of its own, killable like a pod."""

    def main() -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
        run_worker(loaded, url)

    proc = multiprocessing.get_context("fork").Process(target=main, daemon=True)
    proc.start()
    return proc


def _markers(folder: Path) -> dict[int, int]:
    """pid -> trial number of the trials that have started (touch_and_sleep's marker files)."""
    return {int(p.name.split("-")[0]): int(p.name.split("-")[1]) for p in folder.iterdir()}


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sweep_losing_30pc_of_its_workers_finishes_and_one_raising_on_30pc_stops(
    pg_url: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    """10 workers, 3 SIGKILLed mid-trial: their trials are lost (no heartbeat within 3 s),
    re-queued and run by the others; the sweep ends with exactly 10 finished, the failure cap
    (2) and the failure-rate rule (20%) do not fire, and status, report, summary and the lost-rate
    rule see the 3 lost trials and their GPU-hours. The same budget with trials raising on ~30%
    stops on the failure-rate rule."""
    markers = tmp_path / "markers"
    markers.mkdir()
    decision = {"max_failure_rate": 0.2, "min_trials_for_failure_rate": 10}
    worker = {"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.3}
    killed_spec = base_spec(
        study_name="killed",
        objective="hpo_core.testing.objectives:touch_and_sleep",
        data={"marker_dir": str(markers), "seconds": 2.0},
        decision=decision,
        worker={**worker, "max_failed_trials": 2},
    )
    loaded = parse_spec(yaml.safe_dump(killed_spec))
    create_study(loaded, open_storage(pg_url)).handle.dispose()
    procs = [_fork_worker(loaded, pg_url) for _ in range(10)]
    deadline = time.monotonic() + 60
    while len(_markers(markers)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = sorted(_markers(markers))[:3]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for proc in procs:
        proc.join(timeout=max(1.0, deadline - time.monotonic()))
    assert all(p.exitcode is not None for p in procs), "workers still running after 60 s"
    assert sorted(p.exitcode for p in procs) == [-signal.SIGKILL] * 3 + [0] * 7

    sweep = load_study("killed", open_storage(pg_url))
    trials = sweep.study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    assert states == {TrialState.COMPLETE: 10, TrialState.FAIL: 3}, states
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert {t.user_attrs["worker"]["pid"] for t in lost} == set(killed)
    assert all(t.user_attrs["lost_cause"].startswith("heartbeat: ") for t in lost)
    for t in lost:  # each one's copy ran to the end
        [copy] = [c for c in trials if c.system_attrs.get("failed_trial") == t.number]
        assert copy.state == TrialState.COMPLETE and copy.params == t.params

    progress = study_progress(sweep)
    assert (progress.finished, progress.failed, progress.lost) == (10, 0, 3)
    assert "0 failed, 3 lost" in progress.line()
    table = build_trials_table(trials, sweep.spec)
    s = table.summary
    assert (s.failed, s.lost, s.failure_rate, s.lost_causes) == (0, 3, 0.0, {"heartbeat": 3})
    assert s.lost_rate == pytest.approx(3 / 13)
    assert s.gpu_hours_lost == pytest.approx(2 * s.hours_lost) and s.hours_lost > 3 * 3 / 3600
    decision_now = decide(table)
    assert (decision_now.action, decision_now.rule) == ("done", "budget"), decision_now
    # a cluster losing more than max_lost_rate of the trials stops the sweep, and says why
    strict = parse_spec(
        yaml.safe_dump({**killed_spec, "decision": {**decision, "max_lost_rate": 0.2}})
    )
    stopped = decide(build_trials_table(trials, strict.spec))
    assert (stopped.action, stopped.rule) == ("stop", "lost_rate"), stopped
    assert "3 of 13 trials were lost" in stopped.message and "keeps killing workers" in (
        stopped.message
    )

    plan = replace(
        run_plan(tmp_path / "killed.yaml", tmp_path / "run"),
        study_name="killed",
        n_trials=10,
        dry_run=True,
        tracking=False,
        segments=[10],
    )
    summary = finish_sweep(plan, storage_url=pg_url, tracking_uri=None, decision=None)
    assert (summary["failed"], summary["lost"], summary["lost_causes"]) == (0, 3, {"heartbeat": 3})
    assert summary["gpu_hours_lost"] == pytest.approx(s.gpu_hours_lost, abs=1e-3)
    markdown = (tmp_path / "run" / "summary.md").read_text()
    assert "- lost to the infrastructure: 3 trial(s), re-queued (23.1%; " in markdown
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "0 failed, 3 lost, 0 running" in report and "## Lost to the infrastructure" in report
    assert "| heartbeat | 3 |" in report and "GPU-hours" in report
    assert finish_alerts(summary) == []  # 23% lost is under the default max_lost_rate of 50%
    alerts = finish_alerts({**summary, "max_lost_rate": 0.2})
    assert [subject for subject, _ in alerts] == ["sweep killed: lost-trial rate 23.1%"]
    assert "the cluster keeps killing workers" in alerts[0][1]

    # the same budget, with trials that raise on about 30% of their parameters
    raising_spec = base_spec(
        study_name="raising",
        objective="hpo_core.testing.objectives:fails_when",
        data={"threshold": 0.7},
        decision=decision,
        worker=worker,
    )
    report_ = run_worker(parse_spec(yaml.safe_dump(raising_spec)), pg_url)
    assert report_.complete == 10 and report_.failed >= 3, report_
    raising = load_study("raising", open_storage(pg_url))
    table = build_trials_table(raising.study.get_trials(deepcopy=False), raising.spec)
    assert table.summary.lost == 0 and table.summary.failed == report_.failed
    verdict = decide(table)
    assert (verdict.action, verdict.rule) == ("stop", "failure_rate"), verdict

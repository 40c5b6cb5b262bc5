"""Who owns a study's trials and settings: the stored spec wins over a worker's file, a stop flag
keeps workers out until `hpo resume`, `hpo cleanup` never fails a live worker's trial, and a
worker whose result arrives after someone else failed its trial says the result was discarded."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.trial import TrialState

from hpo_core.errors import HpoError, StudyStopped
from hpo_core.pipeline import plan_run
from hpo_core.spec import load_spec
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_SPEC_YAML, create_study, load_study
from hpo_core.worker import cleanup_stale_trials
from hpo_core.worker.lost import lose_trial
from tests.helpers import HPO, base_spec, run_hpo

pytestmark = pytest.mark.slow


@pytest.fixture(params=["journal", "postgres"])
def storage_url(request: pytest.FixtureRequest, journal_url: str) -> str:
    return journal_url if request.param == "journal" else str(request.getfixturevalue("pg_url"))


def _slow(seconds: float, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "objective": "hpo_core.testing.objectives:slow",
        "data": {"seconds": seconds},
        "worker": {"heartbeat_interval": 1, "grace_period": 3},
    }
    return base_spec(**(settings | overrides))


def _running(
    url: str, worker: subprocess.Popen[str], name: str = "test_study", timeout: float = 60
) -> list[Any]:
    """The study's RUNNING trials once the worker has started one (one storage handle for the
    whole wait: a handle per poll would pile up database connections)."""
    deadline = time.monotonic() + timeout
    handle = None
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"the worker exited ({worker.returncode}): {worker.communicate()[1]}")
            try:
                handle = handle or open_storage(url, create=False)
                study = load_study(name, handle).study
            except HpoError:  # the worker has not created the journal or the study yet
                time.sleep(0.2)
                continue
            trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if trials:
                return trials
            time.sleep(0.2)
    finally:
        if handle is not None:
            handle.dispose()
    pytest.fail("no trial started")


def _worker(config: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HPO, "worker", "--config", str(config)],
        env=dict(os.environ, HPO_STORAGE_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_stopped_study_keeps_workers_out_until_resumed(
    journal_url: str,
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_spec(base_spec(n_trials=2))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(config.parent))
    env = {"HPO_STORAGE_URL": journal_url, "SWEEPFLOW_CONFIG_DIR": str(config.parent)}
    assert run_hpo("worker", "--config", str(config), "--max-trials", "1", env=env).returncode == 0
    stop = run_hpo("stop", "test_study", "--reason", "bad data found", env=env)
    assert stop.returncode == 0 and "until `hpo resume test_study`" in stop.stdout
    shown = re.compile(
        r"^error: study 'test_study' is stopped \(bad data found; set by \S+@\S+ at "
        r"\d{4}-\d\d-\d\dT[\d:]+\+00:00\); `hpo resume test_study` clears the stop flag$"
    )
    for command in (
        ("worker", "--config", str(config)),
        ("worker", "--study", "test_study"),
        ("sweep", "--config", str(config), "--workers", "1", "--no-tracking"),
    ):
        refused = run_hpo(*command, env=env)
        assert refused.returncode == 3, (command, refused.stderr)
        assert shown.match(refused.stderr.strip().splitlines()[-1]), refused.stderr
    status = run_hpo("status", "test_study", env=env).stdout.splitlines()
    assert status[1].startswith("  study 'test_study' is stopped (bad data found; set by")
    # the DAG's plan fails on it with the same line (and never retries: a StudyStopped)
    with pytest.raises(StudyStopped, match=r"is stopped \(bad data found; set by"):
        plan_run(
            {"config": config.name}, run_id="manual__1", home=tmp_path, storage_url=journal_url
        )
    resumed = run_hpo("resume", "test_study", env=env)
    assert "stop flag cleared (was: bad data found)" in resumed.stdout
    assert run_hpo("worker", "--study", "test_study", env=env).returncode == 0
    sweep = load_study("test_study", open_storage(journal_url))
    assert len(sweep.study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_a_worker_with_another_spec_is_refused_and_changes_nothing(
    storage_url: str, write_spec: Callable[..., Path]
) -> None:
    first = write_spec(base_spec(n_trials=2), "first.yaml")
    env = {"HPO_STORAGE_URL": storage_url}
    assert run_hpo("worker", "--config", str(first), env=env).returncode == 0
    stored = load_study("test_study", open_storage(storage_url)).study.user_attrs[ATTR_SPEC_YAML]
    other = base_spec(n_trials=2, sampler={"type": "tpe", "seed": 2})
    other["param_ranges"]["x"]["high"] = 5.0
    refused = run_hpo("worker", "--config", str(write_spec(other, "other.yaml")), env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    [line] = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert "differs in: param_ranges.x, sampler.seed, sampler.type" in line
    after = load_study("test_study", open_storage(storage_url)).study
    assert after.user_attrs[ATTR_SPEC_YAML] == stored and len(after.get_trials()) == 2


def test_cleanup_never_fails_a_live_workers_trial(
    storage_url: str, write_spec: Callable[..., Path]
) -> None:
    """`--older-than` shorter than a trial: the trial's owner is alive, so cleanup leaves it and
    the sweep ends exact. On the journal the owner is a live pid on this host; on PostgreSQL the
    owner is made to look remote, so only its fresh heartbeat speaks for it."""
    config = write_spec(_slow(4.0, n_trials=1))
    worker = _worker(config, storage_url)
    [trial] = _running(storage_url, worker)
    sweep = load_study("test_study", open_storage(storage_url))
    if sweep.handle.kind == "postgresql":
        owner = {**trial.user_attrs["worker"], "host": "another-node", "pid": 1}
        sweep.handle.storage.set_trial_user_attr(trial._trial_id, "worker", owner)
    time.sleep(1.0)  # older than --older-than, with fresh heartbeats
    assert cleanup_stale_trials(sweep, older_than=0.5) == []
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-2000:]
    assert [t.state for t in sweep.study.get_trials()] == [TrialState.COMPLETE]


@pytest.mark.parametrize("objective", ["touch_and_sleep", "slow"])
def test_a_result_told_after_someone_failed_the_trial_is_reported_as_discarded(
    objective: str, journal_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """touch_and_sleep only returns (its tell is refused); slow reports each step (its next
    report finds the trial finished): either way the worker says the result was discarded."""
    spec = _slow(2.0, n_trials=1, objective=f"hpo_core.testing.objectives:{objective}")
    spec["data"]["marker_dir"] = str(tmp_path)
    worker = _worker(write_spec(spec), journal_url)
    [trial] = _running(journal_url, worker)
    # lost once the objective runs: lost while the worker still sets the trial up, any result
    # is "cut short" whatever the objective
    deadline = time.monotonic() + 60
    while objective == "touch_and_sleep" and not any(tmp_path.glob("*-0")):
        assert time.monotonic() < deadline, "the objective never started"
        time.sleep(0.05)
    sweep = load_study("test_study", open_storage(journal_url))
    assert lose_trial(sweep.study, trial._trial_id, "judged dead by a test", max_retry=0)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-2000:]
    result = r"value=0" if objective == "touch_and_sleep" else r"the run was cut short"
    assert re.search(
        rf"trial 0: result discarded \({result}\): the trial was already FAIL by another "
        r"process \(judged dead by a test\)",
        err,
    ), err[-2000:]
    states = [t.state for t in sweep.study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]  # its slot was given back


def test_plan_refuses_run_ids_that_leave_the_runs_folder(
    write_spec: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_spec(base_spec())
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(config.parent))
    for run_id in ("..", ".", "a/../..", "..\\x", "", "a\0b"):
        with pytest.raises(HpoError, match=r"^run_id: .* cannot name a folder"):
            plan_run({"config": config.name}, run_id=run_id, home=tmp_path)
    plan = plan_run({"config": config.name}, run_id="manual__2026-01-01T00:00+00:00", home=tmp_path)
    assert Path(plan.run_dir).parent == (tmp_path / "runs" / "test_study").resolve()


def test_the_stored_spec_is_what_a_worker_joining_by_name_runs(
    journal_url: str, write_spec: Callable[..., Path]
) -> None:
    loaded = load_spec(write_spec(base_spec(n_trials=1)))
    create_study(loaded, open_storage(journal_url))
    done = run_hpo("worker", "--study", "test_study", env={"HPO_STORAGE_URL": journal_url})
    assert done.returncode == 0, done.stderr
    sweep = load_study("test_study", open_storage(journal_url))
    assert yaml.safe_load(sweep.loaded.text) == base_spec(n_trials=1)
    assert len(sweep.study.get_trials(states=(TrialState.COMPLETE,))) == 1

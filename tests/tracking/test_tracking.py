"""MLflow tracking: parent and child runs, outages, back-fill, against a real SQLite store and a
real `mlflow server` with a PostgreSQL backend."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study, load_study
from hpo_core.testing import MlflowServer, PostgresServer
from hpo_core.tracking import ATTR_PARENT_RUN, ATTR_TRACKING_URI, Tracker
from hpo_core.worker import run_worker
from tests.helpers import HPO, mlflow_client, run_hpo, sweep_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the module (it takes ~20 s to start here); each test has its own
    experiments (named after its studies) and leaves the server running."""
    backend = pg_server.create_database(f"mlflow_{os.getpid()}_{time.monotonic_ns() % 10**9}")
    server = MlflowServer(backend, tmp_path_factory.mktemp("mlflow") / "artifacts")
    server.start()
    yield server
    server.stop()


def test_trial_runs_under_one_parent_with_their_names_and_states(tmp_path: Path) -> None:
    """The naming contract on a real SQLite store: the score under the spec's metric on COMPLETE
    runs only (sorting by it ranks the best trial first), the curve as `<metric>_epoch`, pruned
    runs FINISHED and tagged, the data's constants as params, the active params only."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {
        "study_name": "tracked",
        "n_trials": 12,
        "objective": "tests.tracking.objectives:reporting",
        "metric": "val_accuracy",
        "direction": "maximize",
        "sampler": {"type": "random", "seed": 5},
        "pruner": {"type": "none"},
        "param_ranges": {
            "x": {"type": "float", "low": 0, "high": 1},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
            "momentum": {"type": "float", "low": 0, "high": 0.99, "when": {"opt": "sgd"}},
        },
    }
    loaded = parse_spec(yaml.safe_dump(spec))
    storage = f"journal://{tmp_path / 's.journal'}"
    sweep = create_study(loaded, open_storage(storage))
    parent = Tracker(uri).ensure_parent_run(sweep)
    # idempotent: a second launcher (a retried task) finds the same parent run
    assert Tracker(uri).ensure_parent_run(load_study("tracked", open_storage(storage))) == parent
    assert sweep.study.user_attrs[ATTR_TRACKING_URI] == uri
    # the worker finds the store from the study alone (no MLFLOW_TRACKING_URI here)
    run_worker(loaded, storage)
    runs = sweep_runs(uri, "tracked")
    assert [r.info.run_id for r in runs if r.data.tags["sweepflow.role"] == "parent"] == [parent]
    for run in runs:  # which way to sort, on every run
        assert run.data.tags["sweepflow.metric"] == loaded.spec.metric
        assert run.data.tags["sweepflow.direction"] == loaded.spec.direction
    children = [r for r in runs if r.data.tags["sweepflow.role"] == "trial"]
    study = load_study("tracked", open_storage(storage)).study
    trials = {t.number: t for t in study.get_trials()}
    # every trial has its run as soon as the worker returns (the background logger drained)
    assert len(children) == len(trials)
    assert set(Counter(t.state.name for t in trials.values())) == {"COMPLETE", "PRUNED", "FAIL"}
    for run in children:
        tags, metrics = run.data.tags, run.data.metrics
        trial = trials[int(tags["sweepflow.trial_number"])]
        state = trial.state.name
        assert tags["mlflow.parentRunId"] == parent and tags["sweepflow.sweep"] == "tracked"
        assert tags["sweepflow.trial_state"] == state
        assert tags["sweepflow.metric"] == "val_accuracy"
        assert tags["sweepflow.direction"] == "maximize"
        assert tags["sweepflow.log_scaled"] == "lr"
        expected = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}[state]
        assert run.info.status == expected
        assert run.info.start_time == int(trial.datetime_start.timestamp() * 1000)
        # the active params as their values, and the data's constants: nothing else
        assert run.data.params == {
            **{k: str(v) for k, v in trial.params.items()},
            "n_classes": "4",
            "chance_level": "0.25",
            "n_tasks": "12",
        }
        assert ("momentum" in run.data.params) == (trial.params["opt"] == "sgd")
        assert metrics["train_seconds"] == pytest.approx(trial.user_attrs["train_seconds"])
        assert not {"n_classes", "chance_level", "n_tasks", "best_val_acc", "device"} & set(metrics)
        assert not [k for k in metrics if k.startswith("final_")]
        last = max(trial.intermediate_values)
        assert metrics["val_accuracy_epoch"] == pytest.approx(trial.intermediate_values[last])
        if state == "COMPLETE":
            assert metrics["val_accuracy"] == trial.value
        else:  # no score: they sort last
            assert "val_accuracy" not in metrics
        if state == "PRUNED":
            assert tags["sweepflow.pruned_at_step"] == "1"
            assert "below 0.3" in tags["sweepflow.prune_reason"]
        if state == "FAIL":
            assert "above 0.85" in tags["sweepflow.fail_reason"]
    client = mlflow_client(uri)
    experiment = runs[0].info.experiment_id
    ranked = client.search_runs(
        [experiment],
        filter_string="tags.`sweepflow.role` = 'trial'",
        order_by=["metrics.val_accuracy DESC"],
    )
    assert ranked[0].data.tags["sweepflow.trial_number"] == str(study.best_trial.number)
    # back-filling finds nothing missing: one run per trial, never two; a run left RUNNING by a
    # worker that died between its calls is replaced
    half = client.create_run(experiment, tags={**children[0].data.tags})
    client.delete_run(children[0].info.run_id)
    logged, present = Tracker(uri).sync_trials(load_study("tracked", open_storage(storage)))
    assert (logged, present) == (1, len(trials) - 1)
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    assert len(sweep_runs(uri, "tracked", "trial")) == len(trials)
    # a warm-started next sweep: its carried trials have their runs under the old parent; only
    # its own trials get runs under its parent
    nxt = {**spec, "study_name": "tracked_v2", "n_trials": 2, "warm_start": {"study": "tracked"}}
    run_worker(parse_spec(yaml.safe_dump(nxt)), storage)
    v2 = load_study("tracked_v2", open_storage(storage))
    carried = [t for t in v2.study.get_trials() if "carried_from" in t.user_attrs]
    assert len(carried) == 12 and len(v2.study.get_trials()) >= 14
    logged, present = Tracker(uri).sync_trials(v2)
    assert (logged, present) == (len(v2.study.get_trials()) - 12, 0)


def test_pruned_trials_end_finished_with_their_history(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {
        "study_name": "pruned",
        "n_trials": 12,
        "objective": "synthetic",
        "sampler": {"type": "random", "seed": 3},
        "pruner": {
            "type": "hyperband",
            "min_resource": 1,
            "max_resource": 9,
            "reduction_factor": 3,
        },
        "fixed": {"epochs": 9},
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    env = {"HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}"}
    result = run_hpo(
        "sweep",
        "--config",
        str(config),
        "--workers",
        "2",
        "--tracking-uri",
        uri,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    children = sweep_runs(uri, "pruned", "trial")
    states = Counter(r.data.tags["sweepflow.trial_state"] for r in children)
    assert len(children) == 12 and states["PRUNED"] >= 1
    # stopped early by design: FINISHED (KILLED reads as a crash), without the score to sort by
    trials = {
        t.number: t
        for t in load_study("pruned", open_storage(env["HPO_STORAGE_URL"])).study.get_trials()
    }
    pruned = [r for r in children if r.data.tags["sweepflow.trial_state"] == "PRUNED"]
    for run in pruned:
        steps = trials[int(run.data.tags["sweepflow.trial_number"])].intermediate_values
        assert run.info.status == "FINISHED" and "value" not in run.data.metrics
        assert run.data.tags["sweepflow.pruned_at_step"] == str(max(steps))
    history = mlflow_client(uri).get_metric_history(pruned[0].info.run_id, "value_epoch")
    assert len(history) >= 1 and sorted(m.step for m in history) == [m.step for m in history]
    # the sweep used its whole budget: the parent run is closed
    (parent,) = sweep_runs(uri, "pruned", "parent")
    assert parent.info.status == "FINISHED" and parent.data.params["n_trials"] == "12"


def test_untracked_sweep_logs_nothing(tmp_path: Path) -> None:
    spec = {
        "study_name": "quiet",
        "n_trials": 3,
        "objective": "synthetic",
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    env = {"HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}", "HPO_HOME": str(tmp_path)}
    assert run_hpo("sweep", "--config", str(config), "--no-tracking", env=env).returncode == 0
    assert not (tmp_path / "mlflow.db").exists()
    sweep = load_study("quiet", open_storage(env["HPO_STORAGE_URL"]))
    assert ATTR_PARENT_RUN not in sweep.study.user_attrs


def test_sweep_refuses_to_start_when_tracking_is_unreachable(tmp_path: Path) -> None:
    spec = {
        "study_name": "nowhere",
        "n_trials": 3,
        "objective": "synthetic",
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    env = {
        "HPO_STORAGE_URL": f"journal://{tmp_path / 's.journal'}",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    result = run_hpo("sweep", "--config", str(config), env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "tracking: cannot reach http://127.0.0.1:9" in line and "--no-tracking" in line


@pytest.mark.postgres
def test_server_outage_mid_sweep_does_not_fail_it_and_track_backfills(
    mlflow_server: MlflowServer, pg_url: str, tmp_path: Path
) -> None:
    """Studies on PostgreSQL, tracking on an `mlflow server` backed by PostgreSQL; the server is
    killed while trials run. The sweep completes; `hpo track` fills the gap once it is back."""
    spec = {
        "study_name": "outage",
        "n_trials": 14,
        "objective": "hpo_core.testing.objectives:slow",
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "data": {"seconds": 0.4},
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "HPO_STORAGE_URL": pg_url,
        "MLFLOW_TRACKING_URI": mlflow_server.uri,
        "HPO_HOME": str(tmp_path / "home"),
    }
    sweep = subprocess.Popen(
        [HPO, "sweep", "--config", str(config), "--workers", "2", "--status-interval", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # let a few trials be tracked, then kill the server
        if len(sweep_runs(mlflow_server.uri, "outage", "trial")) >= 3:
            break
        time.sleep(0.3)
    mlflow_server.stop()
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output
    trials = load_study("outage", open_storage(pg_url)).study.get_trials()
    assert len(trials) == 14 and all(t.state.name == "COMPLETE" for t in trials)
    logs = "".join(p.read_text() for p in (tmp_path / "home" / "logs").rglob("*.log"))
    # warned once per worker, not once per trial
    assert 1 <= logs.count("tracking: could not log trial") <= 2 and "hpo track outage" in logs
    # back up: `hpo track` fills the gap, and a second call finds nothing to do
    mlflow_server.start()
    track_env = {"HPO_STORAGE_URL": pg_url, "MLFLOW_TRACKING_URI": mlflow_server.uri}
    first = run_hpo("track", "outage", env=track_env)
    assert first.returncode == 0, first.stderr
    children = sweep_runs(mlflow_server.uri, "outage", "trial")
    assert sorted(int(r.data.tags["sweepflow.trial_number"]) for r in children) == list(range(14))
    second = run_hpo("track", "outage", env=track_env)
    assert "logged 0 missing trial run(s), 14 were there" in second.stdout
    parent = load_study("outage", open_storage(pg_url)).study.user_attrs[ATTR_PARENT_RUN]
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in children)


def test_track_with_the_server_down_is_one_line(tmp_path: Path) -> None:
    spec = parse_spec(
        yaml.safe_dump(
            {
                "study_name": "down",
                "n_trials": 2,
                "objective": "synthetic",
                "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
            }
        )
    )
    storage = f"journal://{tmp_path / 's.journal'}"
    create_study(spec, open_storage(storage))
    result = run_hpo(
        "track",
        "down",
        env={
            "HPO_STORAGE_URL": storage,
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        },
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: tracking: cannot reach http://127.0.0.1:9")


def test_analyze_and_refine_attach_to_the_parent_run_and_backfill(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {
        "study_name": "attached_v1",
        "n_trials": 16,
        "objective": "synthetic",
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "fixed": {"epochs": 2},
        "param_ranges": {
            "x": {"type": "float", "low": 0, "high": 1},
            "y": {"type": "float", "low": 0, "high": 1},
        },
    }
    loaded = parse_spec(yaml.safe_dump(spec))
    storage = f"journal://{tmp_path / 's.journal'}"
    sweep = create_study(loaded, open_storage(storage))
    Tracker(uri).ensure_parent_run(sweep)
    # trials that ran while the tracking store was away: the study has them, MLflow does not
    os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    try:
        run_worker(loaded, storage)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert sweep_runs(uri, "attached_v1", "trial") == []
    env = {"HPO_STORAGE_URL": storage}
    report = run_hpo("analyze", "attached_v1", "--out", str(tmp_path / "report"), env=env)
    assert report.returncode == 0, report.stderr
    assert "tracking: back-filled 16 trial run(s)" in report.stdout
    assert "tracking: attached report to run" in report.stdout
    refine = run_hpo("refine", "attached_v1", "--out", str(tmp_path / "next.yaml"), env=env)
    assert refine.returncode == 0, refine.stderr
    (parent,) = sweep_runs(uri, "attached_v1", "parent")
    # the sweep's figures on it, and the ended sweep's final decision in the study
    assert parent.data.metrics["trials_complete"] == 16 and "best_value" in parent.data.metrics
    assert parent.data.tags["sweepflow.final_decision"] == "done"
    assert load_study("attached_v1", open_storage(storage)).study.user_attrs["sweepflow.decision"][
        "final"
    ]
    client = mlflow_client(uri)
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/analysis.json", "report/history.png"} <= files
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "next_spec")] == [
        "next_spec/next.yaml"
    ]
    assert len(sweep_runs(uri, "attached_v1", "trial")) == 16


@pytest.mark.postgres
def test_worker_logs_in_the_background_drains_at_exit_and_never_waits_on_a_hung_server(
    mlflow_server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No-op trials outrun the logging to an `mlflow server` on PostgreSQL: every child run is
    there when run_worker returns. Then a server that accepts and never answers: the worker
    does not wait on it (the queue is full at 2, the exit waits 1 s), and back-fill loses
    nothing."""
    import socket

    from hpo_core.tracking import mlflow_store

    def sweep(name: str) -> tuple[Any, str]:
        spec = {
            "study_name": name,
            "n_trials": 12,
            "objective": "noop",
            "sampler": {"type": "random", "seed": 3},
            "pruner": {"type": "none"},
            "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
        }
        loaded = parse_spec(yaml.safe_dump(spec))
        storage = f"journal://{tmp_path / name}.journal"
        Tracker(mlflow_server.uri).ensure_parent_run(create_study(loaded, open_storage(storage)))
        return loaded, storage

    loaded, storage = sweep("drained")
    run_worker(loaded, storage)
    assert len(sweep_runs(mlflow_server.uri, "drained", "trial")) == 12
    # a run's end is one call: MLflow's client fetches the run to print its URL unless told not to
    assert "View run" not in capfd.readouterr().out

    loaded, storage = sweep("hung")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections queue in the kernel; nothing ever reads them
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        monkeypatch.setenv(mlflow_store.ENV_DRAIN, "1")
        monkeypatch.setattr(mlflow_store, "QUEUE_SIZE", 2)
        started = time.monotonic()
        report = run_worker(loaded, storage)
        assert report.complete == 12 and time.monotonic() - started < 10
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert sweep_runs(mlflow_server.uri, "hung", "trial") == []
    logged, present = Tracker(mlflow_server.uri).sync_trials(
        load_study("hung", open_storage(storage))
    )
    assert (logged, present) == (12, 0)

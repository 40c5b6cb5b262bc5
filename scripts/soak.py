"""`make soak`: the reliability faults again, longer, with recovery times measured.

1. PostgreSQL restarted under 4 workers (down 5 s, twice): seconds from the server being back to
   the workers' next successful storage call, and whether the study ends exact (n_trials finished,
   none RUNNING, none duplicated).
2. A worker killed with SIGKILL mid-trial (PostgreSQL, heartbeat 1 s, grace 3 s): seconds from the
   kill to its trial being marked failed, and to the retry finishing.
3. The MLflow server killed under load (`hpo sweep --workers 4`, 200 trials of 2 s, tracking on an
   `mlflow server` backed by PostgreSQL), down 20 s, then back: whether any trial failed, how many
   trial runs the workers logged on their own after it came back (they retry a minute after a
   failure), how many `hpo track` back-filled and in what time, and that a second `hpo track`
   logs nothing.
Results go to bench/results/soak.json and are printed as a table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import TrialState

from hpo_core.storage import open_storage
from hpo_core.study import load_study
from hpo_core.testing import running_postgres

HPO = str(Path(sys.executable).with_name("hpo"))
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def _spec(tmp: Path, **data: Any) -> Path:
    objective = "touch_and_sleep" if "marker_dir" in data else "slow"
    spec = {
        "study_name": "soak",
        "n_trials": data.pop("n_trials"),
        "objective": f"hpo_core.testing.objectives:{objective}",
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "param_ranges": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "data": data,
        "worker": {"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.5},
    }
    path = tmp / f"soak-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _workers(config: Path, url: str, n: int) -> list[subprocess.Popen[str]]:
    env = dict(os.environ, HPO_STORAGE_URL=url)
    return [
        subprocess.Popen(
            [HPO, "worker", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def _trials(url: str) -> list[Any]:
    return load_study("soak", open_storage(url)).study.get_trials(deepcopy=False)


def _exact(url: str, n: int) -> bool:
    trials = _trials(url)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    numbers = [t.number for t in trials]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return len(done) == n and not running and len(numbers) == len(set(numbers))


def postgres_restart(server: Any, tmp: Path, *, workers: int = 4, downs: int = 2) -> dict[str, Any]:
    url = server.create_database(f"restart{time.monotonic_ns()}")
    config = _spec(tmp, n_trials=60, seconds=0.5)
    procs = _workers(config, url, workers)
    back_at: list[float] = []
    for _ in range(downs):
        time.sleep(4)
        server.stop()
        time.sleep(5)
        server.start()
        back_at.append(time.time())
    logs = [p.communicate(timeout=600)[1] for p in procs]
    recovered = []
    for log in logs:
        for line in log.splitlines():
            if "storage reachable again" in line and (m := STAMP.match(line)):
                when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
                since = [when - b for b in back_at if when >= b - 1]
                if since:
                    recovered.append(max(0.0, min(since)))
    return {
        "workers": workers,
        "restarts": downs,
        "down_s": 5,
        "recovery_s_max": round(max(recovered), 1) if recovered else None,
        "recovery_s_median": round(sorted(recovered)[len(recovered) // 2], 1)
        if recovered
        else None,
        "exact": _exact(url, 60),
        "exit_codes": [p.returncode for p in procs],
    }


def killed_worker(server: Any, tmp: Path) -> dict[str, Any]:
    url = server.create_database(f"killed{time.monotonic_ns()}")
    markers = tmp / f"markers{time.monotonic_ns()}"
    markers.mkdir()
    config = _spec(tmp, n_trials=6, marker_dir=str(markers), seconds=2.0)
    procs = _workers(config, url, 3)
    while not list(markers.iterdir()):
        time.sleep(0.05)
    victim = int(next(markers.iterdir()).name.split("-")[0])
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=300)
    trials = _trials(url)
    dead = next(t for t in trials if t.state == TrialState.FAIL)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    failed_after = dead.datetime_complete.timestamp() - killed_at
    retried_after = retry.datetime_complete.timestamp() - killed_at
    return {
        "grace_period_s": 3,
        "failed_after_s": round(failed_after, 1),
        "retry_done_after_s": round(retried_after, 1),
        "exact": _exact(url, 6),
    }


def _trial_runs(uri: str, study: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return 0
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`sweepflow.role` = 'trial'", max_results=5000
    )
    return len(runs)


def mlflow_outage(
    server: Any, tmp: Path, *, workers: int = 4, down_s: float = 20
) -> dict[str, Any]:
    from hpo_core.testing.mlflow_server import MlflowServer

    url = server.create_database(f"mlflow_outage{time.monotonic_ns()}")
    tracking = MlflowServer(server.create_database(f"mlflow{time.monotonic_ns()}"), tmp / "art")
    tracking.start()
    n = 200  # 2 s trials: the sweep outlasts the outage and the workers' one-minute retry
    config = _spec(tmp, n_trials=n, seconds=2.0)
    env = dict(
        os.environ, HPO_STORAGE_URL=url, MLFLOW_TRACKING_URI=tracking.uri, HPO_HOME=str(tmp / "h")
    )
    sweep = subprocess.Popen(
        [HPO, "sweep", "--config", str(config), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while _trial_runs(tracking.uri, "soak") < 10:
            time.sleep(0.5)
        tracking.stop()
        time.sleep(down_s)
        tracking.start()
        back = time.monotonic()
        logged_when_back = _trial_runs(tracking.uri, "soak")
        resumed_after: float | None = None
        while sweep.poll() is None:
            if resumed_after is None and _trial_runs(tracking.uri, "soak") > logged_when_back:
                resumed_after = time.monotonic() - back
            time.sleep(1)
        logged_by_workers = _trial_runs(tracking.uri, "soak")
        began = time.monotonic()
        track = subprocess.run(
            [HPO, "track", "soak"], env=env, capture_output=True, text=True, timeout=600
        )
        track_s = time.monotonic() - began
        again = subprocess.run(
            [HPO, "track", "soak"], env=env, capture_output=True, text=True, timeout=600
        )
        after_track = _trial_runs(tracking.uri, "soak")
    finally:
        tracking.stop()
    trials = _trials(url)
    return {
        "workers": workers,
        "down_s": down_s,
        "trials": len(trials),
        "failed_trials": sum(t.state == TrialState.FAIL for t in trials),
        "sweep_exit": sweep.returncode,
        "runs_when_server_back": logged_when_back,
        "runs_logged_by_workers_after_it_came_back": logged_by_workers - logged_when_back,
        "workers_resumed_logging_after_s": round(resumed_after, 1) if resumed_after else None,
        "runs_missing_at_sweep_end": n - logged_by_workers,
        "track_backfill_s": round(track_s, 1),
        "track_output": track.stdout.strip().splitlines()[-1:] if track.stdout else [],
        "runs_after_track": after_track,
        "second_track": again.stdout.strip().splitlines()[-1:] if again.stdout else [],
        "exact": _exact(url, n) and after_track == n and track.returncode == 0,
    }


def main() -> int:
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_dir, running_postgres() as server:
        tmp = Path(tmp_dir)
        print("soak: PostgreSQL restarted twice under 4 workers", flush=True)
        restart = postgres_restart(server, tmp)
        print("soak: a worker killed with SIGKILL mid-trial", flush=True)
        killed = killed_worker(server, tmp)
        print("soak: the MLflow server killed for 20 s under 4 workers", flush=True)
        outage = mlflow_outage(server, tmp)
    results = {"postgres_restart": restart, "killed_worker": killed, "mlflow_outage": outage}
    (out / "soak.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0 if all(r["exact"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

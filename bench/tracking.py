"""(g) What MLflow tracking adds per trial: trials through `run_worker` on a journal file,
untracked versus tracked (a child run per trial: create with its tags, one batch of params and
metrics, terminate, logged by the worker's background thread), on the embedded SQLite store and
on an `mlflow server` backed by PostgreSQL.

Two kinds of trial. No-op trials finish faster than any store logs a run, so the runs queue up
and the wall time is the logger's throughput (the worker waits for the queue at exit). Trials
that sleep `--tracking-sleep` seconds (100 ms by default, a small real trial) leave the logger
time to log each run while the next trial runs: what is added is the setup and the last run.

Run this section alone with `python -m bench.run --out bench/results --skip-harness
--skip-training --skip-analysis --skip-dags --skip-binary --skip-scale --skip-planted
--skip-metrics` (the others keep their last results).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from hpo_core.testing import MlflowServer
from hpo_core.tracking import Tracker
from hpo_core.worker import run_worker

SLEEP_OBJECTIVE = "hpo_core.testing.objectives:slow"  # sleeps data.seconds, reports one value


def _timed_sweep(
    tmp: Path, tag: str, n: int, sleep: float | None, tracking_uri: str | None
) -> dict[str, float]:
    """One worker's sweep: wall time (to run_worker's return), its trial loop, and how long it
    waited at exit for the queued runs, in ms per trial and s."""
    from bench.run import _spec

    if sleep is None:
        loaded = parse_spec(_spec(f"tracking_{tag}", n, "noop"))
    else:
        loaded = parse_spec(_spec(f"tracking_{tag}", n, SLEEP_OBJECTIVE, {"seconds": sleep}))
    storage = f"journal://{tmp}/tracking_{tag}.journal"
    sweep = create_study(loaded, open_storage(storage))
    if tracking_uri is not None:
        Tracker(tracking_uri).ensure_parent_run(sweep)
    t0 = time.perf_counter()
    report = run_worker(loaded, storage)
    elapsed = time.perf_counter() - t0
    assert report.complete == n, report
    return {
        "wall_ms": 1000 * elapsed / n,
        "loop_ms": 1000 * report.elapsed_s / n,
        "drain_s": report.tracking_wait_s,
    }


def _row(
    store: str, trials: str, n: int, base: dict[str, float], tracked: dict[str, float]
) -> dict[str, Any]:
    return {
        "store": store,
        "trial": trials,
        "trials": n,
        "untracked_ms": round(base["wall_ms"], 2),
        "tracked_ms": round(tracked["wall_ms"], 2),
        "overhead_ms": round(tracked["wall_ms"] - base["wall_ms"], 2),
        "loop_overhead_ms": round(tracked["loop_ms"] - base["loop_ms"], 2),
        "drain_s": round(tracked["drain_s"], 3),
    }


def tracking_overhead(
    server: Any, tmp: Path, n: int = 200, n_sleep: int = 100, sleep: float = 0.1
) -> list[dict[str, Any]]:
    logging.getLogger("hpo_core").setLevel(logging.WARNING)
    sleeping = f"sleep {1000 * sleep:g} ms"
    base = _timed_sweep(tmp, "off", n, None, None)
    base_sleep = _timed_sweep(tmp, "off_sleep", n_sleep, sleep, None)
    sqlite = f"sqlite:///{tmp}/mlflow.db"
    rows = [
        _row("SQLite (embedded)", "no-op", n, base, _timed_sweep(tmp, "sqlite", n, None, sqlite)),
        _row(
            "SQLite (embedded)",
            sleeping,
            n_sleep,
            base_sleep,
            _timed_sweep(tmp, "sqlite_sleep", n_sleep, sleep, sqlite),
        ),
    ]
    mlflow = MlflowServer(server.create_database("bench_mlflow"), tmp / "mlartifacts")
    mlflow.start()
    try:
        store = "`mlflow server` on PostgreSQL"
        rows.append(_row(store, "no-op", n, base, _timed_sweep(tmp, "server", n, None, mlflow.uri)))
        rows.append(
            _row(
                store,
                sleeping,
                n_sleep,
                base_sleep,
                _timed_sweep(tmp, "server_sleep", n_sleep, sleep, mlflow.uri),
            )
        )
    finally:
        mlflow.stop()
    return rows


def render(results: dict[str, Any]) -> list[str]:
    rows = results.get("tracking", [])
    if not rows or "trial" not in rows[0]:
        return []
    lines = [
        "",
        "| tracking store | trial | trials | untracked ms/trial | tracked ms/trial "
        "| added ms/trial | added in the loop ms/trial | wait at exit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['trial']} | {r['trials']} | {r['untracked_ms']} | "
            f"{r['tracked_ms']} | {r['overhead_ms']} | {r['loop_overhead_ms']} | {r['drain_s']} |"
        )
    return lines

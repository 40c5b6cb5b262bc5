"""(g) What MLflow tracking costs per trial: no-op trials through `run_worker` on a journal file,
untracked versus tracked (a child run per trial with its params, metrics, tags and state), on the
embedded SQLite store and on an `mlflow server` backed by PostgreSQL."""

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


def _per_trial_ms(tmp: Path, tag: str, n: int, tracking_uri: str | None) -> float:
    from bench.run import _spec

    loaded = parse_spec(_spec(f"tracking_{tag}", n, "noop"))
    storage = f"journal://{tmp}/tracking_{tag}.journal"
    sweep = create_study(loaded, open_storage(storage))
    if tracking_uri is not None:
        Tracker(tracking_uri).ensure_parent_run(sweep)
    t0 = time.perf_counter()
    report = run_worker(loaded, storage)
    elapsed = time.perf_counter() - t0
    assert report.complete == n, report
    return 1000 * elapsed / n


def tracking_overhead(server: Any, tmp: Path, n: int = 200) -> list[dict[str, Any]]:
    logging.getLogger("hpo_core").setLevel(logging.WARNING)
    base = _per_trial_ms(tmp, "off", n, None)
    rows = []
    sqlite_ms = _per_trial_ms(tmp, "sqlite", n, f"sqlite:///{tmp}/mlflow.db")
    rows.append(
        {
            "store": "sqlite (embedded)",
            "trials": n,
            "untracked_ms": round(base, 2),
            "tracked_ms": round(sqlite_ms, 2),
            "overhead_ms": round(sqlite_ms - base, 2),
        }
    )
    mlflow = MlflowServer(server.create_database("bench_mlflow"), tmp / "mlartifacts")
    mlflow.start()
    try:
        server_ms = _per_trial_ms(tmp, "server", n, mlflow.uri)
    finally:
        mlflow.stop()
    rows.append(
        {
            "store": "mlflow server, PostgreSQL",
            "trials": n,
            "untracked_ms": round(base, 2),
            "tracked_ms": round(server_ms, 2),
            "overhead_ms": round(server_ms - base, 2),
        }
    )
    return rows


def render(results: dict[str, Any]) -> list[str]:
    rows = results.get("tracking", [])
    if not rows:
        return []
    lines = [
        "",
        "| tracking store | trials | untracked ms/trial | tracked ms/trial | overhead ms |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['trials']} | {r['untracked_ms']} | "
            f"{r['tracked_ms']} | {r['overhead_ms']} |"
        )
    return lines

"""(g) What MLflow tracking adds per trial: trials through `run_worker` on a journal file,
untracked versus tracked (a child run per trial: create with its tags, one batch of params and
metrics, terminate, logged by the worker's background thread), on the embedded SQLite store and
on an `mlflow server` backed by PostgreSQL.

Two kinds of trial. No-op trials finish faster than any store logs a run, so the runs queue up
and the wall time is the logger's throughput (the worker waits for the queue at exit). Trials
that sleep `--tracking-sleep` seconds (100 ms by default, a small real trial) leave the logger
time to log each run while the next trial runs: what is added is the setup and the last run.
The server is measured twice: sharing this machine's cores with the worker (the server's own
CPU then slows the worker down), and with the worker alone on its core (a server elsewhere, as
deployed). Untracked and tracked runs alternate; each figure is the best of 3. The wall time on
a shared machine moves with its load; the trial loop's CPU time (this thread's) does not.

Run this section alone with `python -m bench.run --out bench/results --skip-harness
--skip-training --skip-analysis --skip-dags --skip-binary --skip-scale --skip-planted
--skip-metrics` (the others keep their last results).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
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
    tmp: Path, name: str, n: int, sleep: float | None, tracking_uri: str | None
) -> dict[str, float]:
    """One worker's sweep in this thread: wall time to run_worker's return and this thread's
    CPU time (the trial loop's, unmoved by other processes' load), per trial, and how long the
    worker waited at exit for its queued runs."""
    from bench.run import _spec

    if sleep is None:
        loaded = parse_spec(_spec(name, n, "noop"))
    else:
        loaded = parse_spec(_spec(name, n, SLEEP_OBJECTIVE, {"seconds": sleep}))
    storage = f"journal://{tmp}/{name}.journal"
    sweep = create_study(loaded, open_storage(storage))
    if tracking_uri is not None:
        Tracker(tracking_uri).ensure_parent_run(sweep)
    t0, c0 = time.perf_counter(), time.thread_time()
    report = run_worker(loaded, storage)
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
    assert report.complete == n, report
    return {
        "wall_ms": 1000 * elapsed / n,
        "cpu_ms": 1000 * cpu / n,
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
        "loop_cpu_ms": round(tracked["cpu_ms"] - base["cpu_ms"], 2),
        "drain_s": round(tracked["drain_s"], 3),
    }


@contextlib.contextmanager
def _own_core(pg: Any) -> Iterator[bool]:
    """This process (the worker) on the first CPU; the `mlflow server` (a child process) and
    PostgreSQL on the others: a server on another machine, as deployed, rather than one taking
    the worker's core on this one. Threads started meanwhile (the logger) stay on the first."""
    import psutil

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    me = psutil.Process()
    postmaster = psutil.Process(int((pg.data / "postmaster.pid").read_text().split()[0]))
    others = [*me.children(recursive=True), postmaster, *postmaster.children(recursive=True)]
    for proc in others:
        proc.cpu_affinity(cpus[1:])  # PostgreSQL's later backends inherit the postmaster's
    me.cpu_affinity(cpus[:1])
    try:
        yield True
    finally:
        me.cpu_affinity(cpus)
        for proc in others:
            with contextlib.suppress(psutil.Error):
                proc.cpu_affinity(cpus)


def tracking_overhead(
    server: Any,
    tmp: Path,
    n: int = 200,
    n_sleep: int = 100,
    sleep: float = 0.1,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    logging.getLogger("hpo_core").setLevel(logging.WARNING)
    sleeping = f"sleep {1000 * sleep:g} ms"
    _timed_sweep(tmp, "warmup", 20, None, None)  # imports, caches: not the baseline's

    def pair(store: str, tag: str, uri: str) -> list[dict[str, Any]]:
        """No-op and sleeping trials, untracked and tracked in ``uri``, alternated so that a
        change in the machine's load falls on both sides; each the best of ``repeats``."""
        kinds = {"no-op": (n, None), sleeping: (n_sleep, sleep)}
        best: dict[tuple[str, bool], dict[str, float]] = {}
        for r in range(repeats):
            for kind, (count, seconds) in kinds.items():
                for tracked in (False, True):
                    name = f"{tag}_{count}_{tracked:d}_{r}"
                    got = _timed_sweep(tmp, name, count, seconds, uri if tracked else None)
                    key = (kind, tracked)
                    if key not in best or got["wall_ms"] < best[key]["wall_ms"]:
                        best[key] = got
        return [
            _row(store, kind, count, best[kind, False], best[kind, True])
            for kind, (count, _) in kinds.items()
        ]

    rows = pair("SQLite (embedded)", "sqlite", f"sqlite:///{tmp}/mlflow.db")
    mlflow = MlflowServer(server.create_database("bench_mlflow"), tmp / "mlartifacts")
    mlflow.start()
    try:
        rows += pair("`mlflow server` on PostgreSQL, same cores", "server", mlflow.uri)
        with _own_core(server) as pinned:
            if pinned:
                rows += pair(
                    "`mlflow server` on PostgreSQL, worker on its own core", "pinned", mlflow.uri
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
        "| added ms/trial | loop CPU added ms/trial | wait at exit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['trial']} | {r['trials']} | {r['untracked_ms']} | "
            f"{r['tracked_ms']} | {r['overhead_ms']} | {r['loop_cpu_ms']} | {r['drain_s']} |"
        )
    return lines

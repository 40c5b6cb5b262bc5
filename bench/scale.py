"""How far one PostgreSQL study scales (`make bench`, section "scale").

N `hpo worker` processes share one study of sleep trials long enough that this machine's cores
are not the limit. Measured per N:

- efficiency: ideal time (trials x length / N) over measured time, from the moment every worker
  holds its first trial to the last completion (the scaling section's clock);
- the study lock per reservation: the wait for it and how long it is held (each worker's report,
  `hpo worker`'s JSON line), which bounds the study's trial rate: reservations are serial;
- SQL statements per trial (each worker counts what its engine sends);
- database connections per worker (pg_stat_activity, sampled while the workers run);
- the server's CPU per trial (the postmaster's reaped children's CPU time, read from /proc once
  every worker has disconnected).

The server runs with fsync and synchronous commit on, as a production database does: the lock
is held across the commit of the new trial's row.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["render", "scale_model", "scale_run"]


def _postmaster_children_cpu(server: Any) -> float:
    """CPU seconds of the server's exited backends (cutime + cstime of the postmaster)."""
    pid = int((server.data / "postmaster.pid").read_text().splitlines()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _sample_connections(url: str, database: str, stop: threading.Event, seen: list[int]) -> None:
    import sqlalchemy

    # autocommit: pg_stat_activity is read once per transaction, so a long one sees no change
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    query = sqlalchemy.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND application_name = "
        "'sweepflow'"
    )
    try:
        with engine.connect() as conn:
            while not stop.wait(0.25):
                seen.append(int(conn.execute(query, {"d": database}).scalar() or 0))
    finally:
        engine.dispose()


def scale_run(
    server: Any, workers: int, per_worker: int, sleep: float, tmp: Path
) -> dict[str, Any]:
    """One study of ``workers x per_worker`` trials of ``sleep`` seconds, ``workers`` processes."""
    import optuna

    from bench.run import _spec
    from hpo_core.spec import load_spec
    from hpo_core.storage import open_storage
    from hpo_core.study import create_study, load_study

    name = f"scale_{workers}"
    url = server.create_database(name)
    n = workers * per_worker
    go = tmp / f"go_{name}"
    config = tmp / f"{name}.yaml"
    config.write_text(
        _spec(
            name,
            n,
            "bench.objectives:barrier_sleep",
            {"sleep_seconds": sleep, "go_file": str(go)},
        )
    )
    env = dict(
        os.environ,
        HPO_STORAGE_URL=url,
        PYTHONPATH=os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
        HPO_TORCH_THREADS="1",
    )
    hpo = str(Path(sys.executable).with_name("hpo"))
    # the study exists before the workers start, as the DAG's prepare task makes it
    handle = open_storage(url)
    create_study(load_spec(config), handle)
    handle.dispose()
    cpu_before = _postmaster_children_cpu(server)
    launched = time.perf_counter()
    procs = [
        subprocess.Popen(
            [hpo, "worker", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    stop, seen = threading.Event(), []
    sampler = threading.Thread(
        target=_sample_connections, args=(server.url("postgres"), name, stop, seen), daemon=True
    )
    sampler.start()
    while len(list(tmp.glob(f"go_{name}.ready.*"))) < workers:
        failed = next((p for p in procs if p.poll() not in (None, 0)), None)
        if failed is not None:
            raise RuntimeError(failed.communicate()[1][-2000:])
        time.sleep(0.05)
    joined_s = time.perf_counter() - launched
    released = time.time()
    go.touch()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        reports.append(json.loads(out.strip().splitlines()[-1]))
    stop.set()
    sampler.join()
    time.sleep(1.0)  # the postmaster reaps the backends of the workers that left
    server_cpu = _postmaster_children_cpu(server) - cpu_before
    handle = open_storage(url)
    trials = load_study(name, handle).study.get_trials(deepcopy=False)
    handle.dispose()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    last = max(t.datetime_complete.timestamp() for t in done if t.datetime_complete)
    measured = last - released
    ideal = n * sleep / workers
    holds = [r["lock_hold_ms"]["p50"] for r in reports if r["lock_hold_ms"]]
    return {
        "workers": workers,
        "trial_s": sleep,
        "trials": len(done),
        "ideal_s": round(ideal, 2),
        "measured_s": round(measured, 2),
        "efficiency": round(ideal / measured, 3),
        "join_s": round(joined_s, 1),
        "lock_hold_ms_p50": round(statistics.median(holds), 2),
        "lock_hold_ms_p95": round(max(r["lock_hold_ms"]["p95"] for r in reports), 2),
        "lock_wait_ms_p50": round(statistics.median(r["lock_wait_ms"]["p50"] for r in reports), 2),
        "lock_wait_ms_p95": round(max(r["lock_wait_ms"]["p95"] for r in reports), 2),
        "statements_per_trial": round(sum(r["db_statements"] for r in reports) / len(done), 1),
        "connections_max": max(seen) if seen else None,
        "connections_per_worker": round(max(seen) / workers, 2) if seen else None,
        "server_cpu_ms_per_trial": round(1000 * server_cpu / len(done), 1),
    }


def scale_model(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's ceiling from the measured figures: the lock admits one reservation at a
    time, so at most 1000 / hold_ms trials start per second; one server core runs at most
    1000 / server_cpu_ms trials per second. Workers served = rate x trial length."""
    widest = max(runs, key=lambda r: r["workers"])
    hold = widest["lock_hold_ms_p50"]
    server_ms = max(r["server_cpu_ms_per_trial"] for r in runs)
    lock_rate = 1000.0 / hold
    server_rate = 1000.0 / server_ms  # per server core
    rate = min(lock_rate, server_rate)
    return {
        "lock_hold_ms_p50": hold,
        "lock_ceiling_trials_per_s": round(lock_rate, 1),
        "server_cpu_ms_per_trial": server_ms,
        "server_core_ceiling_trials_per_s": round(server_rate, 1),
        "ceiling_trials_per_s": round(rate, 1),
        "connections_per_worker": widest["connections_per_worker"],
        "workers_at_1_min_trials": int(rate * 60),
        "workers_at_1_h_trials": int(rate * 3600),
    }


def render(results: dict[str, Any]) -> list[str]:
    runs = results.get("scale")
    if not runs:
        return []
    lines = [
        "",
        "One PostgreSQL study (durable server), sleep trials:",
        "",
        "| workers | trial s | trials | efficiency | lock hold ms p50/p95 | lock wait ms p50/p95 "
        "| statements/trial | connections/worker | server CPU ms/trial |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['workers']} | {r['trial_s']:g} | {r['trials']} | {r['efficiency']} | "
            f"{r['lock_hold_ms_p50']}/{r['lock_hold_ms_p95']} | "
            f"{r['lock_wait_ms_p50']}/{r['lock_wait_ms_p95']} | {r['statements_per_trial']} | "
            f"{r['connections_per_worker']} | {r['server_cpu_ms_per_trial']} |"
        )
    m = results.get("scale_model") or {}
    if m:
        lines += [
            "",
            f"Ceiling: {m['ceiling_trials_per_s']} trials/s (lock: {m['lock_ceiling_trials_per_s']}"
            f"/s, one server core: {m['server_core_ceiling_trials_per_s']}/s); workers served: "
            f"{m['workers_at_1_min_trials']:,} at 1-minute trials, {m['workers_at_1_h_trials']:,} "
            "at 1-hour trials (before connections: see the README)",
        ]
    return lines

"""`make bench`: harness overhead, worker scaling and the ARC objective, to JSON and markdown.

(a) Overhead: N no-op trials through sweepflow's worker (`run_worker`, what `hpo worker` runs)
    versus plain `optuna.Study.optimize`, on the same kind of storage (journal file, PostgreSQL),
    both with the same sampler (random, so sampling cost does not hide the harness).
(b) Scaling on PostgreSQL: 1, 4 and 16 `hpo worker` processes, each trial sleeping 0.5 s,
    8 trials per worker. Efficiency = ideal time (trials x 0.5 s / workers) / measured time,
    measured from the barrier release to the last trial's completion.
(c)-(e) ARC data loading, training throughput per model family and Hyperband's savings: see
    bench/training.py.
(f) Analysis time on 1,000 and 10,000 trials: see bench/analysis.py.
(g) MLflow tracking's cost per trial (SQLite store, mlflow server): see bench/tracking.py.
(h) DAG parse time: see bench/dags.py.
(i) The binary_classifier family: metrics on 1M scores, budget sizing, CPU training: see
    bench/binary.py.
(j) Planted truth: decision rates over seeds and refined vs flat sweeps: see bench/planted.py
    (also bench/results/planted.json, planted.md, planted.png).
(k) hpo_core.metrics against scikit-learn on 1M scores, time ratios and agreement: see
    bench/sklearn_metrics.py.
Sections can be skipped (--skip-harness, --skip-training, --skip-analysis, --skip-tracking,
--skip-dags, --skip-binary, --skip-planted, --skip-metrics); the others keep their last results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import yaml

from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from hpo_core.testing import running_postgres
from hpo_core.worker import run_worker

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _spec(name: str, n_trials: int, objective: str, data: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(
        {
            "study_name": name,
            "n_trials": n_trials,
            "objective": objective,
            "sampler": {"type": "random", "seed": 0},
            "pruner": {"type": "none"},
            "param_ranges": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "data": data or {},
            "worker": {"poll_interval": 0.1},
        }
    )


def overhead(url_for: Any, kind: str, n: int, repeats: int) -> dict[str, Any]:
    """Alternate sweepflow and plain Optuna runs on fresh storages; keep each side's best."""
    import logging

    logging.getLogger("hpo_core").setLevel(logging.WARNING)
    hpo_runs, plain_runs = [], []
    for r in range(repeats):
        loaded = parse_spec(_spec(f"overhead_{kind}", n, "noop"))
        t0 = time.perf_counter()
        report = run_worker(loaded, url_for(f"hpo{r}"))
        hpo_runs.append(time.perf_counter() - t0)
        assert report.complete == n, report

        handle = open_storage(
            url_for(f"plain{r}"), heartbeat_interval=loaded.spec.worker.heartbeat_interval
        )
        study = optuna.create_study(
            storage=handle.storage, study_name="plain", sampler=optuna.samplers.RandomSampler(0)
        )

        def objective(trial: optuna.Trial) -> float:
            trial.suggest_float("x", 0.0, 1.0)
            return 0.0

        t0 = time.perf_counter()
        study.optimize(objective, n_trials=n)
        plain_runs.append(time.perf_counter() - t0)
        handle.dispose()
    hpo_ms, plain_ms = 1000 * min(hpo_runs) / n, 1000 * min(plain_runs) / n
    return {
        "storage": kind,
        "trials": n,
        "repeats": repeats,
        "hpo_ms_per_trial": round(hpo_ms, 3),
        "optuna_ms_per_trial": round(plain_ms, 3),
        "overhead_ms_per_trial": round(hpo_ms - plain_ms, 3),
        "ratio": round(hpo_ms / plain_ms, 3),
    }


def scaling(server: Any, workers: int, per_worker: int, sleep: float, tmp: Path) -> dict[str, Any]:
    url = server.create_database(f"scaling_{workers}")
    n = workers * per_worker
    go = tmp / f"go_{workers}"
    config = tmp / f"scaling_{workers}.yaml"
    config.write_text(
        _spec(
            f"scaling_{workers}",
            n,
            "bench.objectives:barrier_sleep",
            {"sleep_seconds": sleep, "go_file": str(go)},
        )
    )
    env = dict(
        os.environ,
        HPO_STORAGE_URL=url,
        PYTHONPATH=os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
    )
    hpo = str(Path(sys.executable).with_name("hpo"))
    t_launch = time.perf_counter()
    procs = [
        subprocess.Popen(
            [hpo, "worker", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    while len(list(tmp.glob(f"go_{workers}.ready.*"))) < workers:
        if any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError(next(p for p in procs if p.poll()).stderr.read()[-2000:])
        time.sleep(0.02)
    startup_s = time.perf_counter() - t_launch
    released = time.time()
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
    study = load_study(f"scaling_{workers}", open_storage(url)).study
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # Optuna returns naive local datetimes; .timestamp() reads them as local time.
    last = max(t.datetime_complete.timestamp() for t in done if t.datetime_complete)
    measured = last - released
    ideal = n * sleep / workers
    return {
        "workers": workers,
        "trials": len(done),
        "trials_total": len(trials),
        "sleep_s": sleep,
        "ideal_s": round(ideal, 3),
        "measured_s": round(measured, 3),
        "efficiency": round(ideal / measured, 3),
        "join_s": round(startup_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--per-worker", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds per scaling trial")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-harness", action="store_true", help="skip overhead and scaling")
    parser.add_argument("--skip-training", action="store_true", help="skip the ARC benchmarks")
    parser.add_argument("--skip-analysis", action="store_true", help="skip the analysis timing")
    parser.add_argument("--skip-tracking", action="store_true", help="skip the MLflow timing")
    parser.add_argument("--skip-dags", action="store_true", help="skip the DAG parse timing")
    parser.add_argument("--skip-binary", action="store_true", help="skip binary_classifier")
    parser.add_argument("--skip-scale", action="store_true", help="skip one study's scale")
    parser.add_argument("--skip-planted", action="store_true", help="skip the planted truth")
    parser.add_argument("--skip-metrics", action="store_true", help="skip metrics vs sklearn")
    parser.add_argument("--scale-workers", default="1,8,32,64")
    parser.add_argument("--scale-per-worker", type=int, default=3)
    parser.add_argument("--scale-sleep", type=float, default=5.0, help="seconds per scale trial")
    parser.add_argument(
        "--threads",
        default=f"1,{os.cpu_count() or 1}",
        help="torch threads for the throughput benchmark",
    )
    parser.add_argument("--pruning-trials", type=int, default=16)
    parser.add_argument("--pruning-seeds", default="11,12", help="sampler seeds, one pair each")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a partial run (--skip-...) keeps the other sections of the last results
    previous = out / "bench.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    results.update(
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        optuna=optuna.__version__,
    )
    if not args.skip_dags:
        from bench import dags

        print("dags: parse time of dags/hpo_sweep.py", flush=True)
        results["dags"] = dags.parse_times()
    if not args.skip_binary:
        from bench import binary

        print("binary: metrics on 1M scores, budget sizing, CPU training", flush=True)
        results["binary"] = binary.binary_bench()
    if not args.skip_metrics:
        from bench import sklearn_metrics

        print("metrics: hpo_core.metrics vs scikit-learn on 1M scores", flush=True)
        results["sklearn_metrics"] = sklearn_metrics.metrics_vs_sklearn()
    if not args.skip_planted:
        from bench import planted

        print("planted: decision rates over seeds, refined vs flat sweeps", flush=True)
        results["planted"] = planted.planted_bench()
        planted.write(results, out)
    if not args.skip_analysis:
        from bench import analysis

        print("analysis: 1,000 and 10,000 trials, 15 parameters", flush=True)
        results["analysis"] = analysis.analysis_times([1000, 10000])
        print("analysis: 10,000 trials with 20 intermediate values each, 70% pruned", flush=True)
        results["analysis_pruned"] = analysis.pruned_times()
    if not args.skip_training:
        from bench import training

        print("data: load 800 ARC-AGI-1 tasks", flush=True)
        results["data"] = training.data_loading()
        print("throughput: 2 epochs per model family", flush=True)
        threads = sorted({int(x) for x in args.threads.split(",")})
        results["throughput"] = training.throughput(threads)
        seeds = [int(x) for x in args.pruning_seeds.split(",")]
        results["pruning"] = training.pruning(args.pruning_trials, seeds)
    if args.skip_harness:
        args.skip_overhead, args.workers = True, ""
    else:
        results["scaling"] = []
    if not args.skip_overhead:
        results["overhead"] = []
    with tempfile.TemporaryDirectory() as tmp_dir, running_postgres() as server:
        tmp = Path(tmp_dir)
        if not args.skip_overhead:
            print(f"overhead: {args.trials} no-op trials, journal", flush=True)
            results["overhead"].append(
                overhead(
                    lambda tag: f"journal://{tmp}/{tag}.journal",
                    "journal",
                    args.trials,
                    args.repeats,
                )
            )
            print(f"overhead: {args.trials} no-op trials, postgresql", flush=True)
            results["overhead"].append(
                overhead(
                    lambda tag: server.create_database(f"overhead_{tag}"),
                    "postgresql",
                    args.trials,
                    args.repeats,
                )
            )
        if not args.skip_tracking:
            from bench import tracking

            print("tracking: 200 no-op trials, untracked vs SQLite store vs server", flush=True)
            results["tracking"] = tracking.tracking_overhead(server, tmp)
        for w in [int(x) for x in args.workers.split(",") if x]:
            print(
                f"scaling: {w} workers x {args.per_worker} trials of {args.sleep:g} s", flush=True
            )
            results["scaling"].append(scaling(server, w, args.per_worker, args.sleep, tmp))
    if not args.skip_scale:
        from bench import scale

        # a server with fsync on: the study lock is held across the commit of a trial's row
        with tempfile.TemporaryDirectory() as tmp_dir, running_postgres(durable=True) as server:
            results["scale"] = []
            for w in [int(x) for x in args.scale_workers.split(",") if x]:
                print(
                    f"scale: {w} workers x {args.scale_per_worker} trials of "
                    f"{args.scale_sleep:g} s, durable PostgreSQL",
                    flush=True,
                )
                results["scale"].append(
                    scale.scale_run(
                        server, w, args.scale_per_worker, args.scale_sleep, Path(tmp_dir)
                    )
                )
            results["scale_model"] = scale.scale_model(results["scale"])
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = render(results)
    (out / "bench.md").write_text(table)
    print(table)
    return 0


def render(results: dict[str, Any]) -> str:
    lines = [
        f"Benchmarks ({results['machine']}, optuna {results['optuna']}, {results['when']})",
        "",
        "| storage | trials | hpo worker ms/trial | optuna.optimize ms/trial | overhead ms "
        "| ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.get("overhead", []):
        lines.append(
            f"| {r['storage']} | {r['trials']} | {r['hpo_ms_per_trial']} | "
            f"{r['optuna_ms_per_trial']} | {r['overhead_ms_per_trial']} | {r['ratio']} |"
        )
    lines += [
        "",
        "| workers | trials | ideal s | measured s | efficiency | start + join s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.get("scaling", []):
        lines.append(
            f"| {r['workers']} | {r['trials']} | {r['ideal_s']} | {r['measured_s']} | "
            f"{r['efficiency']} | {r['join_s']} |"
        )
    from bench.analysis import render as render_analysis
    from bench.binary import render as render_binary
    from bench.dags import render as render_dags
    from bench.planted import render as render_planted
    from bench.tracking import render as render_tracking
    from bench.training import render as render_training

    lines += render_training(results)
    lines += render_analysis(results)
    lines += render_tracking(results)
    lines += render_dags(results)
    lines += render_binary(results)
    lines += render_planted(results)
    from bench.sklearn_metrics import render as render_sklearn_metrics

    lines += render_sklearn_metrics(results)
    from bench.scale import render as render_scale

    lines += render_scale(results)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

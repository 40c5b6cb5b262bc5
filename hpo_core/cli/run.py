"""`hpo` commands: run (run workers)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from hpo_core.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Group,
    gpu_args,
    positive_float,
    positive_int,
    storage_arg,
    storage_url,
    tracking_args,
)

GROUP = Group("Run")


def _worker_options(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", help="a spec: creates its study, or joins it if the stored spec matches"
    )
    source.add_argument(
        "--study", metavar="NAME", help="join an existing study and run its stored spec"
    )
    storage_arg(p)
    p.add_argument("--timeout", type=positive_float, help="stop starting trials after S seconds")
    p.add_argument("--stop-file", help="finish the current trial and exit once this file exists")
    p.add_argument("--worker-id", help="name in logs and trial attributes (default host:pid)")
    p.add_argument("--max-trials", type=positive_int, help="cap on trials for this worker alone")
    p.add_argument(
        "--until",
        type=positive_int,
        metavar="N",
        help="stop once the study has N finished trials (a mid-sweep checkpoint)",
    )


@GROUP.command("worker", "join a study and run trials until its budget is used", _worker_options)
def _cmd_worker(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import join_sweep

    report = join_sweep(
        args.config,
        args.study,
        storage_url(args),
        timeout=args.timeout,
        stop_file=args.stop_file,
        worker_id=args.worker_id,
        max_trials=args.max_trials,
        until=args.until,
    )
    print(json.dumps({k: v for k, v in asdict(report).items() if k != "trial_numbers"}))
    return EXIT_OK


def _sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    tracking_args(p)
    p.add_argument("--workers", type=positive_int, default=1)
    gpu_args(p)
    storage_arg(p)
    p.add_argument("--timeout", type=positive_float, help="workers stop starting trials after S s")
    p.add_argument(
        "--status-interval",
        type=positive_float,
        default=30.0,
        help="seconds between status lines when not on a terminal",
    )
    p.add_argument(
        "--warm-start-from",
        metavar="STUDY",
        help="create the study with the finished trials of STUDY (same storage) that fit its "
        "space; they do not count in n_trials (the spec's warm_start: does the same)",
    )


@GROUP.command("sweep", "run N local workers with a live progress line", _sweep_options)
def _cmd_sweep(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import mask_url, plan_local_sweep, run_local_sweep

    # a bad spec, GPU list or warm-start source: one line, before the banner
    plan = plan_local_sweep(
        args.config,
        storage_url(args),
        workers=args.workers,
        gpus=args.gpus,
        per_gpu=args.workers_per_gpu,
        warm_start=args.warm_start_from,
    )
    print(
        f"sweep {plan.loaded.spec.study_name}: {args.workers} workers, storage "
        f"{mask_url(plan.url)}",
        file=sys.stderr,
    )
    print(
        f"  worker logs in {plan.log_dir}; stop gracefully with Ctrl-C or `touch {plan.stop_file}`",
        file=sys.stderr,
    )
    print(f"  {plan.gpus.line()}", file=sys.stderr)
    result = run_local_sweep(
        plan,
        workers=args.workers,
        timeout=args.timeout,
        status_interval=args.status_interval,
        tracking=not args.no_tracking,
        tracking_uri=args.tracking_uri,
        warm_start=args.warm_start_from,
    )
    print(result.progress.line())
    if result.failed_workers:
        for i in result.failed_workers:
            print(
                f"error: worker {i} exited with code {result.exit_codes[i]}; see "
                f"{result.log_dir / f'worker-{i}.log'}",
                file=sys.stderr,
            )
        return EXIT_ERROR
    return EXIT_INTERRUPTED if result.stopped_by_user else EXIT_OK

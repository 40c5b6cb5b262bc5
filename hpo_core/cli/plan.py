"""`hpo` commands: plan (check a spec and what it needs before launching)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from hpo_core.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    Group,
    gpu_args,
    out_folder,
    positive_float,
    positive_int,
    short,
    storage_arg,
    storage_url,
    tracking_args,
)
from hpo_core.errors import HpoError

GROUP = Group("Plan")


def _validate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", nargs="+", metavar="CONFIG")


@GROUP.command("validate", "check sweep specs and summarise their search spaces", _validate_options)
def _cmd_validate(args: argparse.Namespace) -> int:
    from hpo_core.errors import SpecError
    from hpo_core.pipeline import validate_spec

    failed = False
    for path in args.configs:
        try:
            summary = validate_spec(path)
        except SpecError as exc:
            failed = True
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr)
            print(f"{path}: {len(exc.issues)} problem(s)", file=sys.stderr)
            continue
        print(summary.text)
        if not summary.available:
            print(
                f"  warning    objective {summary.objective!r} is not installed here; "
                "workers on this machine cannot run it"
            )
    return EXIT_ERROR if failed else EXIT_OK


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    storage_arg(p)
    tracking_args(p)
    p.add_argument(
        "--allow-cpu", action="store_true", help="a missing GPU warns instead of failing"
    )
    p.add_argument("--min-free-gb", type=positive_float, default=10.0, help="default: 10")
    p.add_argument("--manifest", help="sha256sum listing of the data files to verify")
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke trial")
    p.add_argument(
        "--workers", type=positive_int, default=1, help="list each worker's GPU (default 1)"
    )
    gpu_args(p)
    p.add_argument("--out", help="write checklist.md and checklist.json here")
    p.add_argument("--json", action="store_true", help="print the checklist as JSON")


@GROUP.command("check", "pre-launch checklist: spec, storage, data, GPU, disk, ...", _check_options)
def _cmd_check(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import prelaunch_checks

    if args.out:
        out_folder(args.out)
    checklist = prelaunch_checks(
        args.config,
        storage_url=storage_url(args),
        tracking=not args.no_tracking,
        tracking_uri=args.tracking_uri,
        allow_cpu=args.allow_cpu,
        min_free_gb=args.min_free_gb,
        manifest=args.manifest,
        smoke=not args.no_smoke,
        workers=args.workers,
        gpus=args.gpus,
        per_gpu=args.workers_per_gpu,
        on_result=None if args.json else lambda r: print(r.line, flush=True),
    )
    if args.out:
        for path in checklist.write(args.out):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(checklist.to_json())
    elif checklist.ok:
        print(f"ready to launch {checklist.study_name}")
    if not checklist.ok:
        first = checklist.failed[0]
        print(f"error: check {first.name} failed: {first.reason}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _smoke_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("--trials", type=positive_int, default=1, help="smoke trials (default 1)")
    p.add_argument("--epochs", type=positive_int, default=1, help="epochs per trial (default 1)")
    p.add_argument(
        "--max-samples",
        type=positive_int,
        default=64,
        help="use the first N samples of the data, where the objective reads a subset "
        "(arc_classifier; a time series is used whole) (default 64)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command(
    "smoke", "run a spec's objective briefly in a scratch study (pre-launch check)", _smoke_options
)
def _cmd_smoke(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import smoke_trials

    results = smoke_trials(
        args.config,
        n_trials=args.trials,
        epochs=args.epochs,
        max_samples=args.max_samples,
        seed=args.seed,
    )
    if args.json:
        print(
            json.dumps(
                [{k: v for k, v in asdict(r).items() if k != "traceback"} for r in results],
                indent=2,
                default=str,
            )
        )
    for r in results:
        if args.json:
            break
        if r.ok:
            print(f"smoke trial {r.number}: COMPLETE value={r.value:.4f} in {r.seconds:.1f}s")
        else:
            print(f"smoke trial {r.number}: {r.state} in {r.seconds:.1f}s: {r.error}")
        shown = ", ".join(f"{k}={short(v)}" for k, v in r.params.items())
        print(f"  params  {shown}")
        facts = {k: v for k, v in r.attrs.items() if not isinstance(v, dict)}
        if facts:
            print("  attrs   " + ", ".join(f"{k}={short(v)}" for k, v in facts.items()))
        if r.traceback and args.verbose:
            print(r.traceback, file=sys.stderr)
    failed = [r for r in results if r.state == "FAIL"]
    if failed:
        print(
            f"error: {len(failed)} of {len(results)} smoke trial(s) failed: {failed[0].error}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK


def _configs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir", help="the config folder (default: $SWEEPFLOW_CONFIG_DIR, else configs/hpo)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command(
    "configs",
    "the specs of the config folder the DAGs offer, and the broken ones",
    _configs_options,
)
def _cmd_configs(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import config_catalog, config_dir

    folder = Path(args.dir).resolve() if args.dir else config_dir()
    if not folder.is_dir():
        raise HpoError(f"--dir: {folder} is not a folder; give the config folder")
    entries = config_catalog(folder)
    if args.json:
        rows = [asdict(e) | {"ok": e.ok, "dag_id": e.schedule and e.dag_id} for e in entries]
        print(json.dumps(rows, indent=2))
    else:
        for e in entries:
            if e.ok:
                when = f"  scheduled {e.schedule!r} as {e.dag_id}" if e.schedule else ""
                print(f"ok      {e.file}  study {e.study_name}{when}")
            else:
                print(f"broken  {e.error}")
        broken = sum(not e.ok for e in entries)
        print(f"{folder}: {len(entries)} spec(s), {broken} broken")
    return EXIT_ERROR if any(not e.ok for e in entries) else EXIT_OK

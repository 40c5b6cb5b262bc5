"""`hpo` commands: champions (retrain the best, register them in MLflow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpo_core.cli._common import (
    EXIT_OK,
    Group,
    open_sweep,
    out_folder,
    positive_int,
    storage_arg,
    tracking_args,
)

GROUP = Group("Champions")


def _champions_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("-k", "--top", type=positive_int, help="configurations (spec: champions.top_k)")
    p.add_argument("--epochs", type=positive_int, help="epochs (spec: champions.epochs)")
    p.add_argument("--patience", type=positive_int, help="early-stop patience")
    p.add_argument("--seeds", type=positive_int, help="runs per configuration")
    p.add_argument("--model-name", help="registered model (default: the study family)")
    storage_arg(p)
    tracking_args(p, optional=False)


@GROUP.command("champions", "retrain the top configurations, register the best", _champions_options)
def _cmd_champions(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import champion_ui, train_sweep_champions

    sweep = open_sweep(args, args.study)
    result = train_sweep_champions(
        sweep,
        tracking_uri=args.tracking_uri,
        top_k=args.top,
        epochs=args.epochs,
        early_stop_patience=args.patience,
        seeds=args.seeds,
        model_name=args.model_name,
    )
    metric = sweep.spec.metric
    for run in result.runs:
        again = " (finished earlier, reused)" if run.reused else ""
        print(
            f"champion #{run.rank} trial {run.trial} seed {run.seed}: {metric}={run.value:.4f}, "
            f"{run.epochs} epochs, {run.train_seconds:.0f}s, {run.n_params:,} parameters, "
            f"run {run.run_id}{again}"
        )
    for trial, (mean, std) in result.means.items():
        group = result.group_runs.get(trial)
        print(
            f"trial {trial}: mean {metric} {mean:.4f} +- {std:.4f}"
            + (f", group run {group}" if group else "")
        )
    print(f"registered model {result.model_name}: {result.message}")
    print(f"MLflow UI: {champion_ui(sweep)}")
    return EXIT_OK


def _track_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    storage_arg(p)
    tracking_args(p, optional=False)


@GROUP.command("track", "create a study's MLflow parent run, back-fill trial runs", _track_options)
def _cmd_track(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import track_sweep

    logged, present, parent, uri = track_sweep(open_sweep(args, args.study), args.tracking_uri)
    print(
        f"{args.study}: parent run {parent} in {uri}; logged {logged} missing trial run(s), "
        f"{present} were there"
    )
    return EXIT_OK


def _compare_runs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "studies", nargs="*", metavar="STUDY", help="default: every sweep with champions"
    )
    p.add_argument("--model-name", help="only this registered model's versions")
    p.add_argument("--out", help="folder for champions.csv, champions.md and champions.png")
    tracking_args(p, optional=False)


@GROUP.command(
    "compare-runs", "champions across sweeps from MLflow (table, CSV, plot)", _compare_runs_options
)
def _cmd_compare_runs(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import compare_champion_runs

    if args.out:
        out_folder(args.out)
    files = compare_champion_runs(
        args.tracking_uri,
        studies=args.studies,
        model_name=args.model_name,
        out=Path(args.out) if args.out else None,
        on_table=print,
    )
    if args.out:
        print(f"wrote {', '.join(str(f) for f in files)}")
    return EXIT_OK

"""`hpo` commands: watch (look at studies while they run)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpo_core.cli._common import (
    EXIT_OK,
    Group,
    open_sweep,
    out_file,
    positive_int,
    short,
    storage_arg,
    storage_url,
)

GROUP = Group("Watch")


def _status_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command("status", "progress of one study", _status_options)
def _cmd_status(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import study_status

    status = study_status(open_sweep(args, args.study))
    progress, flag = status.progress, status.stopped
    if args.json:
        data = asdict(progress)
        data["started_at"] = progress.started_at.isoformat() if progress.started_at else None
        data.update(finished=progress.finished, failure_rate=progress.failure_rate)
        data["stopped"] = asdict(flag) if flag else None
        print(json.dumps(data, indent=2))
    else:
        print(progress.line())
        if flag is not None:
            print(f"  {flag.line(status.sweep.name)}")
    return EXIT_OK


def _top_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("-k", "--top", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument("--out", help="write the configurations (fixed + sampled) to this YAML file")
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command("top", "the best completed trials of a study", _top_options)
def _cmd_top(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import best_trials, write_configs

    sweep = open_sweep(args, args.study)
    if args.out:
        out_file(args.out)
    top = best_trials(sweep, args.top)
    if args.out:
        path = write_configs(sweep, top, Path(args.out))
        print(f"wrote {len(top)} configuration(s) to {path}", file=sys.stderr)
    if args.json:
        allowed = sweep.spec.metrics
        rows = [
            asdict(t) | {"attrs": {k: v for k, v in t.attrs.items() if not allowed.is_forbidden(k)}}
            for t in top
        ]
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    if not top:
        print(f"{args.study}: no completed trials yet")
        return EXIT_OK
    metric = sweep.spec.metric or "value"
    for t in top:
        chance = t.attrs.get("chance_level")
        versus = f" (chance level {chance:.3f})" if isinstance(chance, int | float) else ""
        took = f", {t.seconds:.0f}s" if t.seconds is not None else ""
        epochs = t.attrs.get("epochs_trained")
        trained = f", {epochs} epochs" if epochs is not None else ""
        print(f"#{t.rank}  trial {t.number}  {metric}={t.value:.4f}{versus}{trained}{took}")
        figures = _priority_figures(sweep.spec, t.attrs)
        if figures:
            print("    " + "  ".join(f"{k}={v}" for k, v in figures.items()))
        print("    " + ", ".join(f"{k}={short(v)}" for k, v in t.params.items()))
    return EXIT_OK


def _studies_options(p: argparse.ArgumentParser) -> None:
    storage_arg(p)


@GROUP.command("studies", "list the studies in a storage", _studies_options)
def _cmd_studies(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import list_sweeps, mask_url

    url = storage_url(args)
    rows = list_sweeps(url)
    if not rows:
        print(f"no studies in {mask_url(url)}")
        return EXIT_OK
    width = max(len(r.name) for r in rows)
    print(f"{'study':<{width}}  trials  budget  best        started")
    for r in rows:
        best = f"{r.best_value:.6g}" if r.best_value is not None else "-"
        started = r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-"
        budget = str(r.n_trials) if r.n_trials is not None else "-"
        print(f"{r.name:<{width}}  {r.trials:>6}  {budget:>6}  {best:<10}  {started}")
    return EXIT_OK


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    storage_arg(p)


@GROUP.command("spec", "print the spec stored with a study", _spec_options)
def _cmd_spec(args: argparse.Namespace) -> int:
    sweep = open_sweep(args, args.study)
    sys.stdout.write(sweep.loaded.text)
    return EXIT_OK


def _lineage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="a study, or a study family (its newest study's chain)")
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command(
    "lineage",
    "the generations of a study or family: spec hash, what changed, best, mean, GPU/trial-hours",
    _lineage_options,
)
def _cmd_lineage(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import sweep_lineage_of

    # an unknown name fails before the analysis runs
    lineage, text = sweep_lineage_of(args.study, storage_url(args))
    print(json.dumps(lineage.as_dict(), indent=2) if args.json else text)
    return EXIT_OK


def _priority_figures(spec: Any, attrs: dict[str, Any]) -> dict[str, str]:
    """The spec's priority metrics a trial recorded, in order (precision and recall as %)."""
    shown = {}
    for name in spec.metrics.ordered(list(spec.metrics.priority)):
        value = attrs.get(name)
        if isinstance(value, int | float):
            share = name.startswith(("precision", "recall"))
            shown[name] = f"{100 * value:.1f}%" if share else f"{value:.4f}"
    return shown

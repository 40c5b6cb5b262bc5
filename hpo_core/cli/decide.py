"""`hpo` commands: decide & refine (read a study and plan the next one)."""

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
    fraction,
    open_sweep,
    out_file,
    out_folder,
    positive_int,
    short,
    storage_arg,
)

GROUP = Group("Decide & refine")


def _analyze_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("--out", required=True, help="folder for report.md, CSVs, JSON and plots")
    storage_arg(p)
    p.add_argument(
        "--importance",
        choices=["ped_anova", "fanova", "none"],
        help="importance method (default: the spec's analysis.importance)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


@GROUP.command(
    "analyze", "report on a study: statistics, elites, flags, next spec", _analyze_options
)
def _cmd_analyze(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import report_study

    sweep = open_sweep(args, args.study)
    out_folder(args.out)
    done = report_study(
        sweep,
        args.out,
        importance=args.importance,  # choices checked by argparse
        plots=not args.no_plots,
        on_step=_progress(sweep, show=True),
        on_file=lambda name: print(f"analyze {args.study}: wrote {name}", file=sys.stderr),
        on_warning=lambda text: print(f"warning: {text}", file=sys.stderr),
    )
    analysis, files = done.analysis, done.files
    s = analysis.summary
    print(
        f"{s.study_name}: {s.complete} completed, {s.pruned} pruned, {s.failed} failed, "
        f"{s.lost} lost; best {short(s.best_value)}; decision {analysis.decision.action} "
        f"({analysis.decision.rule})"
    )
    for flag in analysis.flags:
        print(f"  red flag  {flag.message}")
    print(f"report: {Path(args.out) / 'report.md'} ({len(files)} files)")
    _attach(sweep, Path(args.out), "report", backfill=True, analysis=analysis)
    return EXIT_OK


def _decide_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    storage_arg(p)
    p.add_argument(
        "--apply",
        action="store_true",
        help="on stop, set the study's stop flag (workers finish their trial and exit); on "
        "continue, queue the noise probe (decision.noise_probe)",
    )


@GROUP.command("decide", "mid-sweep decision: continue, stop or done (JSON)", _decide_options)
def _cmd_decide(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import decide_sweep

    record = decide_sweep(open_sweep(args, args.study), apply=args.apply)
    print(json.dumps(record, indent=2, default=str))
    return EXIT_OK


def _refine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("--out", required=True, help="the next spec (YAML)")
    p.add_argument("--study-name", help="study_name of the next spec (default: next version)")
    storage_arg(p)


@GROUP.command("refine", "write the next search space from a study's evidence", _refine_options)
def _cmd_refine(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import refine_sweep

    sweep = open_sweep(args, args.study)
    out_file(args.out)
    refinement = refine_sweep(sweep, Path(args.out), study_name=args.study_name)
    width = max(len(st.param) for st in refinement.steps) if refinement.steps else 5
    for st in refinement.steps:
        print(f"{st.param:<{width}}  {st.rule:<11} {st.old} -> {st.new}  ({st.evidence})")
    print(
        f"wrote {args.out}: study {refinement.spec.study_name}, "
        f"{len(refinement.spec.param_ranges)} searched parameters, n_trials "
        f"{refinement.n_trials}; check it with `hpo validate {args.out}`"
    )
    _attach(sweep, Path(args.out), "next_spec")
    return EXIT_OK


def _compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_a")
    p.add_argument("study_b")
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command("compare", "two studies side by side (e.g. v2 vs v3)", _compare_options)
def _cmd_compare(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import compare_sweeps

    rows = compare_sweeps(open_sweep(args, args.study_a), open_sweep(args, args.study_b))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return EXIT_OK
    width = max(len(r.figure) for r in rows)
    for r in rows:
        print(f"{r.figure:<{width}}  {short(r.a):>24}  {short(r.b):>24}  {r.change}")
    return EXIT_OK


def _replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument(
        "--decision",
        required=True,
        metavar="FILE",
        help="YAML: a spec with a decision: section, or the section alone",
    )
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command(
    "replay",
    "replay decision rules over a finished study: when each would have stopped",
    _replay_options,
)
def _cmd_replay(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import replay_sweep

    replay, text = replay_sweep(open_sweep(args, args.study), args.decision)
    print(json.dumps(replay.as_dict(), indent=2) if args.json else text)
    return EXIT_OK


def _thresholds_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("-k", "--top", type=positive_int, help="models (default metrics.thresholds_top)")
    p.add_argument(
        "--required-precision",
        type=fraction,
        help="pick the threshold with the best recall at this precision (default "
        "metrics.required_precision, else 0.5)",
    )
    p.add_argument(
        "--min-predicted",
        type=positive_int,
        help="a threshold needs this many predicted positives (default metrics.min_predicted)",
    )
    p.add_argument("--out", help="folder for thresholds.md, thresholds.csv and the plot")
    storage_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


@GROUP.command(
    "thresholds",
    "precision and recall per decision threshold for a study's best models",
    _thresholds_options,
)
def _cmd_thresholds(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import sweep_thresholds

    sweep = open_sweep(args, args.study)
    if args.out:
        out_folder(args.out)
    done = sweep_thresholds(
        sweep,
        Path(args.out) if args.out else None,
        top=args.top,
        required_precision=args.required_precision,
        min_predicted=args.min_predicted,
    )
    report = done.report
    for path in done.files:
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "rank": m.rank,
                        "trial": m.trial,
                        report.metric: m.value,
                        "chosen": asdict(m.chosen) if m.chosen else None,
                        "rows": [asdict(r) for r in m.rows],
                    }
                    for m in report.models
                ],
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    print(done.markdown.split("\n## ")[0].rstrip())
    return EXIT_OK


def _progress(sweep: Any, *, show: bool) -> Any:
    """An ``on_step`` that prints each analysis step with the time so far (or nothing)."""
    import time

    began = time.perf_counter()

    def on_step(step: str) -> None:
        if show:
            print(
                f"analyze {sweep.name}: {step} ({time.perf_counter() - began:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    return on_step


def _attach(
    sweep: Any,
    path: Path,
    artifact_path: str | None,
    *,
    backfill: bool = False,
    analysis: Any = None,
) -> None:
    """A tracked sweep's report or next spec goes to its MLflow parent run too, with the
    analysis's figures (best effort: the files on disk are the result; a tracking outage only
    costs the copy)."""
    from hpo_core.pipeline import publish

    done = publish(sweep, path, artifact_path, backfill=backfill, analysis=analysis)
    if done is None:
        return
    uri = done.tracker.masked_uri
    if done.backfilled:  # trials whose runs were lost to an outage while the sweep ran
        print(f"tracking: back-filled {done.backfilled} trial run(s) in {uri}")
    if done.warning is not None:
        print(f"warning: {done.warning}", file=sys.stderr)
    elif done.attached:
        print(f"tracking: attached {path.name} to run {done.parent} in {uri}")

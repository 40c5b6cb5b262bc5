"""`hpo` commands: control (steer a running study)."""

from __future__ import annotations

import argparse

from hpo_core.cli._common import (
    EXIT_OK,
    Group,
    open_sweep,
    positive_float,
    positive_int,
    storage_arg,
)

GROUP = Group("Control")


def _stop_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("--reason", default="hpo stop", help="recorded with the stop flag")
    p.add_argument(
        "--now",
        action="store_true",
        help="stop running trials at their next batch: they save a checkpoint and are "
        "re-queued, to resume after `hpo resume`",
    )
    storage_arg(p)


@GROUP.command("stop", "ask every worker of a study to stop after its trial", _stop_options)
def _cmd_stop(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import stop

    flag = stop(open_sweep(args, args.study), args.reason, now=args.now)
    how = (
        "running trials save a checkpoint at their next batch and are re-queued (an objective "
        "without checkpoints finishes its trial), workers exit"
        if flag.now
        else "every worker finishes its current trial and exits"
    )
    print(
        f"{args.study}: stop flag set by {flag.by}; {how}, and no new worker starts until "
        f"`hpo resume {args.study}`"
    )
    return EXIT_OK


def _resume_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    storage_arg(p)


@GROUP.command("resume", "clear a study's stop flag, so workers may join again", _resume_options)
def _cmd_resume(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import resume

    flag = resume(open_sweep(args, args.study))
    if flag is None:
        print(f"{args.study}: not stopped; nothing to do")
    else:
        print(f"{args.study}: stop flag cleared (was: {flag.reason}); workers may join again")
    return EXIT_OK


def _budget_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("n_trials", type=positive_int, metavar="N")
    storage_arg(p)


@GROUP.command("budget", "change a study's trial budget (n_trials)", _budget_options)
def _cmd_budget(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import set_trial_budget

    old, new = set_trial_budget(open_sweep(args, args.study), args.n_trials)
    print(
        f"{args.study}: budget {old} -> {new} trials"
        if old != new
        else f"{args.study}: budget is {new} trials already"
    )
    return EXIT_OK


def _enqueue_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--params", help="NAME=VALUE,NAME=VALUE,...")
    group.add_argument("--file", help="YAML/JSON: one mapping of parameters, or a list")
    storage_arg(p)


@GROUP.command("enqueue", "queue specific trials in a study", _enqueue_options)
def _cmd_enqueue(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import queue_trials, read_trials

    trials = read_trials(args.params, args.file)
    sweep = open_sweep(args, args.study)
    queued, skipped = queue_trials(sweep, trials)
    also = f" ({skipped} skipped: the study already has a trial with those parameters)"
    print(
        f"queued {queued} trial(s) in {args.study}{also if skipped else ''}; workers run them next"
    )
    return EXIT_OK


def _cleanup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument(
        "--older-than",
        type=positive_float,
        metavar="SECONDS",
        help="also fail RUNNING trials started longer ago than this (workers on other hosts, "
        "storages without heartbeats)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    storage_arg(p)


@GROUP.command(
    "cleanup",
    "mark trials left RUNNING by dead workers as lost, and re-queue them",
    _cleanup_options,
)
def _cmd_cleanup(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import cleanup_sweep

    sweep = open_sweep(args, args.study)
    cleaned, running = cleanup_sweep(sweep, older_than=args.older_than, dry_run=args.dry_run)
    # a trial whose worker is gone is lost (the infrastructure's doing, not the trial's) and
    # re-queued, up to worker.stale_trial_retries: it does not count as a failure
    verb = "would mark lost" if args.dry_run else "marked lost"
    arrow = "would go RUNNING -> lost" if args.dry_run else "RUNNING -> lost"
    for t in cleaned:
        print(f"trial {t.number}: {arrow} ({t.reason})")
    print(
        f"{args.study}: {verb} {len(cleaned)} stale trial(s); {running} still running"
        if cleaned
        else f"{args.study}: no stale trials; {running} running"
    )
    return EXIT_OK

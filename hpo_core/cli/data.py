"""`hpo` commands: data (objectives and the data they read)."""

from __future__ import annotations

import argparse
import json
import sys

from hpo_core.cli._common import (
    EXIT_OK,
    Group,
    positive_int,
)

GROUP = Group("Data")


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--generate",
        action="store_true",
        help="binary_classifier: write the synthetic imbalanced time series to data.path "
        "(demo and tests; never overwrites a file)",
    )
    p.add_argument("--rows", type=positive_int, default=20000, help="with --generate")
    p.add_argument("--seed", type=int, default=0, help="with --generate")


@GROUP.command("data", "the data a spec trains on: ARC tasks, or a feature table", _data_options)
def _cmd_data(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import describe_data

    report = describe_data(
        args.config,
        generate=args.generate,
        rows=args.rows,
        seed=args.seed,
        on_written=lambda n, path: print(f"wrote {n:,} rows to {path}", file=sys.stderr),
    )
    if args.json:
        print(json.dumps(report.details, indent=2, default=str))
    else:
        print("\n".join(report.lines))
    return EXIT_OK


def _objectives_options(p: argparse.ArgumentParser) -> None:
    pass


@GROUP.command("objectives", "list the registered objectives", _objectives_options)
def _cmd_objectives(args: argparse.Namespace) -> int:
    from hpo_core.pipeline import objective_catalog

    for objective in objective_catalog():
        mark = "" if objective.available else "  (not installed here)"
        print(f"{objective.name:<16} {objective.summary}{mark}")
    return EXIT_OK

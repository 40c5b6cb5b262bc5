"""`hpo` commands: data (objectives and the data they read)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hpo_core.cli._common import (
    EXIT_OK,
    Group,
    positive_int,
)
from hpo_core.errors import HpoError

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
    from hpo_core.objectives import load_spec

    loaded = load_spec(args.config)
    if loaded.spec.objective == "binary_classifier":
        return _binary_data(loaded.spec, args)
    if loaded.spec.objective != "arc_classifier":
        raise HpoError(
            f"{args.config}: objective {loaded.spec.objective!r} reads no data files; "
            "`hpo data` reads arc_classifier and binary_classifier specs"
        )
    if args.generate:
        raise HpoError("--generate: only binary_classifier specs have a synthetic data set")
    from hpo_core.data import ArcDataConfig, load_arc_data

    data = load_arc_data(ArcDataConfig.from_params({**loaded.spec.fixed, **loaded.spec.data}))
    counts = [int(c) for c in data.labels.bincount(minlength=data.n_classes)]
    summary = {
        "source": data.source,
        "tasks": len(data.task_ids),
        "train": len(data.train_idx),
        "val": len(data.val_idx),
        "labels": data.config.labels or "rule labels",
        "classes": dict(zip(data.class_names, counts, strict=True)),
        "chance_level": round(data.chance_level, 4),
        "centroids": None if data.centroids is None else list(data.centroids.shape),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(
        f"{summary['source']}: {summary['tasks']} tasks ({summary['train']} train, "
        f"{summary['val']} validation), labels from {summary['labels']}"
    )
    width = max(len(name) for name in data.class_names)
    for name, count in summary["classes"].items():
        print(f"  {name:<{width}}  {count:>5}  {count / len(data.task_ids):6.1%}")
    print(f"chance level (majority class on validation): {summary['chance_level']:.3f}")
    if data.centroids is not None:
        print(f"centroids: {data.config.centroids} {tuple(data.centroids.shape)}")
    return EXIT_OK


def _objectives_options(p: argparse.ArgumentParser) -> None:
    pass


@GROUP.command("objectives", "list the registered objectives", _objectives_options)
def _cmd_objectives(args: argparse.Namespace) -> int:
    from hpo_core.objectives import is_available, registered_objectives

    for objective in registered_objectives():
        mark = "" if is_available(objective.name) else "  (not installed here)"
        print(f"{objective.name:<16} {objective.summary}{mark}")
    return EXIT_OK


def _binary_data(spec: Any, args: argparse.Namespace) -> int:
    from hpo_core.data import (
        TabularConfig,
        check_table,
        generate_binary_dataset,
        write_table,
    )

    where = {key: "data" for key in spec.data}
    config = TabularConfig.from_params({**spec.fixed, **spec.data}, where)
    if args.generate:
        path = Path(config.path)
        if path.exists():
            raise HpoError(
                f"data.path: {path} exists already; delete it to generate a new one, or use it"
            )
        frame = generate_binary_dataset(args.rows, seed=args.seed)
        write_table(frame, path)
        print(f"wrote {len(frame):,} rows to {path}", file=sys.stderr)
    status, reason, details = check_table(config)
    if status == "fail":
        raise HpoError(f"data: {reason}")
    if args.json:
        print(json.dumps({"status": status, "reason": reason, **details}, indent=2, default=str))
    else:
        print(f"{status}: {reason}")
    return EXIT_OK

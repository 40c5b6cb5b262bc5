"""Champions across sweeps side by side (``hpo compare-runs``): read from MLflow, not the studies.

One row per champion configuration (a sweep's trial retrained over one or more seeds): the metric's
mean and spread over seeds, parameter count, training time, the registered version and whether it
holds the ``champion`` alias (the incumbent), and the configuration keys that differ between rows.
Computed first (:func:`compare_champions`), written after (:func:`write_comparison`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo_core.errors import HpoError
from hpo_core.tracking import Tracker

__all__ = [
    "ChampionComparison",
    "ChampionRow",
    "compare_champions",
    "format_table",
    "write_comparison",
]

# a seed run's own settings, not the configuration's (champion_seed: runs of older versions)
_RUN_PARAMS = (
    "seed",
    "sweep_seed",
    "champion_epochs",
    "champion_patience",
    "champion_seed",
    "sweep_trial_value",
)


@dataclass(frozen=True)
class ChampionRow:
    sweep: str
    trial: int
    rank: int  # the configuration's rank in its sweep
    seeds: int  # finished runs (one per seed)
    mean: float  # of the best validation metric over seeds
    std: float  # over seeds; 0 with one seed
    n_params: int
    train_seconds: float  # mean per seed
    epochs: float  # mean epochs trained per seed
    model: str | None  # the registered model holding it, if any
    version: str | None
    incumbent: bool  # holds the `champion` alias of its registered model
    params: dict[str, str]
    run_ids: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # priority metrics, mean over seeds


@dataclass(frozen=True)
class ChampionComparison:
    metric: str
    direction: str
    rows: list[ChampionRow]  # best mean first
    differing: list[str]  # configuration keys whose values differ between rows
    priority: list[str] = field(default_factory=list)  # figure names shown before the metric

    def diff(self, row: ChampionRow) -> dict[str, str]:
        return {k: row.params.get(k, "-") for k in self.differing}


def compare_champions(
    tracking_uri: str | None = None,
    *,
    studies: Sequence[str] = (),
    model_name: str | None = None,
) -> ChampionComparison:
    """The champion runs of ``studies`` (default: every sweep with champions in the store)."""
    tracker = Tracker(tracking_uri)
    client = tracker.client
    try:
        if studies:
            experiments = []
            for name in studies:
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise HpoError(
                        f"{name}: no such sweep in {tracker.masked_uri}; run `hpo champions "
                        f"{name}` first, or check the name with `hpo studies`"
                    )
                experiments.append(found.experiment_id)
        else:
            experiments = [e.experiment_id for e in client.search_experiments()]
        runs = (
            client.search_runs(
                experiments,
                filter_string="tags.`sweepflow.role` = 'champion' and attributes.status = "
                "'FINISHED'",
                max_results=5000,
            )
            if experiments
            else []
        )
        if model_name:
            names = [model_name]
        else:
            names = sorted({m.name for m in client.search_registered_models()})
        versions: dict[str, tuple[str, str]] = {}  # run id -> (model, version)
        holders: set[str] = set()  # run ids whose version holds the alias
        for name in names:
            for mv in client.search_model_versions(f"name = '{name}'"):
                if mv.run_id:
                    versions[mv.run_id] = (name, str(mv.version))
            with contextlib.suppress(Exception):  # no alias yet
                holders.add(str(client.get_model_version_by_alias(name, "champion").run_id))
    except HpoError:
        raise
    except Exception as exc:
        raise HpoError(
            f"tracking: cannot read {tracker.masked_uri} ({type(exc).__name__}); start the "
            "tracking server or set MLFLOW_TRACKING_URI"
        ) from None
    if not runs:
        where = ", ".join(studies) if studies else tracker.masked_uri
        raise HpoError(f"no finished champion runs in {where}; run `hpo champions STUDY` first")

    groups: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for run in runs:
        tags = run.data.tags
        groups[
            (tags.get("sweepflow.sweep", "?"), int(tags.get("sweepflow.trial_number", -1)))
        ].append(run)
    metric = runs[0].data.tags.get("sweepflow.metric", "value")
    direction = runs[0].data.tags.get("sweepflow.direction", "maximize")
    priority = _priority_figures(runs)
    rows = [
        _row(sweep, trial, group, metric, versions, holders, priority)
        for (sweep, trial), group in groups.items()
    ]
    rows.sort(key=lambda r: (-r.mean if direction == "maximize" else r.mean, r.sweep, r.trial))
    keys = sorted({k for r in rows for k in r.params})
    differing = [k for k in keys if len({r.params.get(k, "-") for r in rows}) > 1]
    return ChampionComparison(metric, direction, rows, differing, priority)


def _priority_figures(runs: list[Any]) -> list[str]:
    """``val_precision, test_precision, val_recall, ...``: the runs' priority metrics (tag
    ``sweepflow.priority``) as logged on validation and test, where the runs logged them."""
    names = [n for n in runs[0].data.tags.get("sweepflow.priority", "").split(",") if n]
    logged = {k for r in runs for k in r.data.metrics}
    return [f"{split}_{n}" for n in names for split in ("val", "test") if f"{split}_{n}" in logged]


def _row(
    sweep: str,
    trial: int,
    group: list[Any],
    metric: str,
    versions: dict[str, tuple[str, str]],
    holders: set[str],
    priority: list[str],
) -> ChampionRow:
    values = [seed_score(r.data.metrics, metric) for r in group]
    registered = next((versions[r.info.run_id] for r in group if r.info.run_id in versions), None)
    first = group[0].data
    return ChampionRow(
        sweep=sweep,
        trial=trial,
        rank=int(first.tags.get("sweepflow.rank", 0)),
        seeds=len(group),
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else 0.0,
        n_params=int(first.metrics.get("n_params", 0)),
        train_seconds=statistics.fmean(r.data.metrics.get("train_seconds", 0.0) for r in group),
        epochs=statistics.fmean(r.data.metrics.get("epochs_trained", 0.0) for r in group),
        model=registered[0] if registered else None,
        version=registered[1] if registered else None,
        incumbent=any(r.info.run_id in holders for r in group),
        params={k: _short(v) for k, v in first.params.items() if k not in _RUN_PARAMS},
        run_ids=[r.info.run_id for r in group],
        figures={
            name: statistics.fmean(float(r.data.metrics.get(name, math.nan)) for r in group)
            for name in priority
        },
    )


def seed_score(metrics: dict[str, float], metric: str) -> float:
    """A champion seed run's score: ``<metric>``, or ``best_<metric>`` in runs logged before the
    score took the metric's own name (their ``<metric>`` was the per-epoch curve, ending on the
    last epoch, not the best)."""
    return float(metrics.get(f"best_{metric}", metrics.get(metric, math.nan)))


def _short(value: str) -> str:
    """Floats as MLflow stores them (``0.07125413891191178``) shortened to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    if "." not in value and "e" not in value.lower():
        return value  # an int, or a word like "nan"
    return f"{number:.4g}"


def format_table(c: ChampionComparison) -> str:
    """The comparison as aligned text lines (what `hpo compare-runs` prints)."""
    header = f"{'':2}{'sweep':<32} {'trial':>5} " + "".join(f"{n:>15} " for n in c.priority)
    header += f"{c.metric + ' mean':>20} {'sd':>7} {'seeds':>5} "
    header += f"{'params':>10} {'train s':>8} {'version':>8}"
    lines = [header]
    for r in c.rows:
        mark = "* " if r.incumbent else "  "
        version = f"{r.model}:{r.version}" if r.version else "-"
        lines.append(
            f"{mark}{r.sweep[:32]:<32} {r.trial:>5} "
            + "".join(f"{r.figures.get(n, math.nan):>15.4f} " for n in c.priority)
            + f"{r.mean:>20.4f} {r.std:>7.4f} {r.seeds:>5} "
            f"{r.n_params:>10,} {r.train_seconds:>8.0f} {version:>8}"
        )
        diff = c.diff(r)
        if diff:
            lines.append("      " + ", ".join(f"{k}={v}" for k, v in diff.items()))
    lines.append("(* holds the `champion` alias of its registered model)")
    return "\n".join(lines)


def write_comparison(c: ChampionComparison, out_dir: str | Path) -> list[Path]:
    """champions.csv, champions.md and champions.png in ``out_dir`` (written atomically)."""
    from hpo_core.files import write_atomic

    out = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    base = ["sweep", "trial", "rank", "seeds", *c.priority, f"{c.metric}_mean", f"{c.metric}_std"]
    base.append("n_params")
    writer.writerow(
        [*base, "train_seconds", "epochs", "model", "version", "incumbent", *c.differing]
    )
    for r in c.rows:
        writer.writerow(
            [r.sweep, r.trial, r.rank, r.seeds,
             *(f"{r.figures.get(n, math.nan):.6g}" for n in c.priority),
             f"{r.mean:.6g}", f"{r.std:.6g}", r.n_params,
             f"{r.train_seconds:.1f}", f"{r.epochs:.1f}", r.model or "", r.version or "",
             r.incumbent, *c.diff(r).values()]
        )  # fmt: skip
    md = [
        f"# Champions compared ({c.metric}, {c.direction})",
        "",
        "| | sweep | trial |"
        + "".join(f" {n} |" for n in c.priority)
        + f" {c.metric} mean | sd | seeds | parameters | train s | version |"
        + "".join(f" {k} |" for k in c.differing),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * (len(c.differing) + len(c.priority)),
    ]
    for r in c.rows:
        md.append(
            f"| {'champion' if r.incumbent else ''} | {r.sweep} | {r.trial} | "
            + "".join(f"{r.figures.get(n, math.nan):.4f} | " for n in c.priority)
            + f"{r.mean:.4f} | "
            f"{r.std:.4f} | {r.seeds} | {r.n_params:,} | {r.train_seconds:.0f} | "
            f"{(r.model or '') + ':' + r.version if r.version else '-'} |"
            + "".join(f" {v} |" for v in c.diff(r).values())
        )
    md += ["", "![champions](champions.png)", ""]
    return [
        write_atomic(out / "champions.csv", buffer.getvalue()),
        write_atomic(out / "champions.md", "\n".join(md)),
        write_atomic(out / "champions.png", _plot(c)),
    ]


def _plot(c: ChampionComparison) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = c.rows[::-1]
    labels = [f"{r.sweep} #{r.trial}" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    colours = ["#dd8452" if r.incumbent else "#4c72b0" for r in rows]
    ax.barh(labels, [r.mean for r in rows], xerr=[r.std for r in rows], color=colours, capsize=3)
    low = min(r.mean - r.std for r in rows)
    high = max(r.mean + r.std for r in rows)
    pad = max((high - low) * 0.3, 0.01)
    ax.set_xlim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
    ax.set_xlabel(f"{c.metric}: mean over seeds, bar = 1 sd (orange: the champion)")
    ax.set_title("Champions across sweeps")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()

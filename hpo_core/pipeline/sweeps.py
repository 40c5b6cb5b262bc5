"""One sweep's stages as the `hpo` command runs them: open it, start it on this machine, decide,
clean up, champions, tracking. Each composes the stage packages once; the CLI only parses and
prints, and the DAG's steps (:mod:`hpo_core.pipeline.run`) reuse what they share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo_core.analysis import Decision, TrialsTable
    from hpo_core.champions import ChampionResult
    from hpo_core.spec import LoadedSpec
    from hpo_core.study import SweepStudy
    from hpo_core.worker import CleanedTrial, GpuAssignment, SweepResult

__all__ = [
    "LocalSweep",
    "champion_ui",
    "cleanup_sweep",
    "compare_champion_runs",
    "decide_sweep",
    "judge",
    "open_sweep",
    "plan_local_sweep",
    "record_decision",
    "run_local_sweep",
    "storage_url",
    "track_sweep",
    "train_sweep_champions",
]


def storage_url(option: str | None) -> str:
    """The storage a command works on: ``--storage``, else $HPO_STORAGE_URL, else the journal."""
    from hpo_core.storage import resolve_storage_url

    return resolve_storage_url(option)


def open_sweep(name: str, url: str) -> SweepStudy:
    """An existing study with its stored spec (the storage is not created)."""
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study

    return load_study(name, open_storage(url, create=False))


# -- start: N local workers ----------------------------------------------------------------


@dataclass(frozen=True)
class LocalSweep:
    """A local sweep checked and placed, before any worker starts (the caller says so first)."""

    loaded: LoadedSpec
    config: str
    url: str
    gpus: GpuAssignment
    log_dir: Path
    stop_file: Path


def plan_local_sweep(
    config: str,
    url: str,
    *,
    workers: int,
    gpus: str | None = None,
    per_gpu: int | None = None,
    warm_start: str | None = None,
) -> LocalSweep:
    """Check what a local sweep needs (the spec, its objective, the GPUs, a warm start's source)
    so a bad input costs one line before any banner or worker."""
    from hpo_core.objectives import load_spec, require_objective_spec
    from hpo_core.worker import assign_gpus, sweep_paths

    loaded = load_spec(config)
    require_objective_spec(loaded.spec, source=loaded.source)
    placed = assign_gpus(workers, gpus=gpus, per_gpu=per_gpu)
    if warm_start or loaded.spec.warm_start:
        from hpo_core.storage import open_storage
        from hpo_core.study import check_warm_start

        probe = open_storage(url)
        try:
            check_warm_start(loaded, probe, warm_start=warm_start)
        finally:
            probe.dispose()
    log_dir, stop_file = sweep_paths(loaded.spec.study_name)
    return LocalSweep(loaded, config, url, placed, log_dir, stop_file)


def run_local_sweep(plan: LocalSweep, **options: Any) -> SweepResult:
    """Run the planned sweep's workers with a live progress line (options: those of
    :func:`hpo_core.worker.run_sweep`)."""
    from hpo_core.worker import run_sweep

    return run_sweep(
        plan.loaded,
        plan.config,
        plan.url,
        log_dir=plan.log_dir,
        stop_file=plan.stop_file,
        gpus=plan.gpus,
        **options,
    )


# -- decide --------------------------------------------------------------------------------


def _trials_table(sweep: SweepStudy) -> TrialsTable:
    from hpo_core.analysis import build_trials_table
    from hpo_core.study import ATTR_N_TRIALS

    n_trials = sweep.study.user_attrs.get(ATTR_N_TRIALS)
    return build_trials_table(sweep.study.get_trials(deepcopy=False), sweep.spec, n_trials=n_trials)


def judge(sweep: SweepStudy) -> Decision:
    """The decision rules over the study as it stands, against its live budget."""
    from hpo_core.analysis import decide

    return decide(_trials_table(sweep))


def record_decision(sweep: SweepStudy, record: dict[str, Any], *, final: bool = False) -> None:
    """Store a decision in the study as its current one (``sweepflow.decision``, what
    optuna-dashboard shows), with ``final`` saying which kind it is: a checkpoint's (a gate,
    `hpo decide`), also kept in the history (``sweepflow.decisions``, one entry per checkpoint,
    so a retried gate replaces its own), or the rules over every trial at the end of the sweep
    (the report's), which stays out of the history: a reader of either never takes one kind
    for the other."""
    from hpo_core.analysis import ATTR_DECISION, ATTR_DECISIONS

    if not final:
        figures = record.get("figures") or {}
        target = record.get("checkpoint_target")  # a gate's; `hpo decide` is at what finished
        entry = {
            "checkpoint": target if target is not None else figures.get("finished"),
            **{k: record.get(k) for k in ("action", "rule", "message", "decided_at")},
            "best": figures.get("best"),
            "best_trial": figures.get("best_trial"),
        }
        kept = [
            e
            for e in sweep.study.user_attrs.get(ATTR_DECISIONS, [])
            if e.get("checkpoint") != entry["checkpoint"]
        ]
        history = sorted([*kept, entry], key=lambda e: e.get("checkpoint") or 0)
        sweep.study.set_user_attr(ATTR_DECISIONS, history)
    sweep.study.set_user_attr(ATTR_DECISION, {**record, "final": final})


def decide_sweep(sweep: SweepStudy, *, apply: bool = False) -> dict[str, Any]:
    """`hpo decide`: the decision, stored in the study; with ``apply``, a stop sets the stop
    flag and a continue queues the noise probe. Returns the record (and what was applied)."""
    from hpo_core.study import enqueue_noise_probe, stop_study

    decision = judge(sweep)
    record = decision.as_dict()
    record_decision(sweep, record)
    if apply and decision.action == "stop":
        stop_study(sweep, f"hpo decide --apply: {decision.rule}: {decision.message}")
        record["applied"] = "stop flag set; workers finish their current trial and exit"
    elif apply and decision.action == "continue":
        probe = enqueue_noise_probe(sweep)
        if probe is not None:
            record["noise_probe"] = probe.as_dict()
    return record


# -- clean up, track, champions ------------------------------------------------------------


def cleanup_sweep(
    sweep: SweepStudy, *, older_than: float | None = None, dry_run: bool = False
) -> tuple[list[CleanedTrial], int]:
    """Trials left RUNNING by dead workers marked lost and re-queued; with the trials still
    running afterwards."""
    from optuna.trial import TrialState

    from hpo_core.worker import cleanup_stale_trials

    cleaned = cleanup_stale_trials(sweep, older_than=older_than, dry_run=dry_run)
    running = len(sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return cleaned, running


def track_sweep(sweep: SweepStudy, tracking_uri: str | None) -> tuple[int, int, Any, str]:
    """The sweep's MLflow parent run created if missing, its trial runs back-filled and its
    figures logged: (logged, present, parent run id, masked tracking URI)."""
    from hpo_core.analysis import decide
    from hpo_core.pipeline.finish import sweep_figures
    from hpo_core.tracking import ATTR_PARENT_RUN, ATTR_TRACKING_URI, Tracker

    tracker = Tracker(tracking_uri, stored=sweep.study.user_attrs.get(ATTR_TRACKING_URI))
    logged, present = tracker.sync_trials(sweep)
    table = _trials_table(sweep)
    tracker.log_sweep_figures(sweep, *sweep_figures(table, decide(table)))
    return logged, present, sweep.study.user_attrs.get(ATTR_PARENT_RUN), tracker.masked_uri


def champion_ui(sweep: SweepStudy) -> str:
    """Where to look at a sweep's champions: the MLflow UI command or URL, opening on the
    experiment's runs ranked by the score (MLflow 3 otherwise opens on its GenAI overview, with
    the runs sorted by creation time and the trials folded under the parent run)."""
    from urllib.parse import quote

    from hpo_core.pipeline.review import ui_base
    from hpo_core.tracking import ATTR_EXPERIMENT, ATTR_TRACKING_URI

    attrs = sweep.study.user_attrs
    uri = str(attrs.get(ATTR_TRACKING_URI, ""))
    view = ""
    if attrs.get(ATTR_EXPERIMENT):
        ascending = "true" if sweep.spec.direction == "minimize" else "false"
        view = (
            f"/#/experiments/{attrs[ATTR_EXPERIMENT]}/runs?workflowType=machine_learning"
            f"&orderByKey={quote(f'metrics.`{sweep.spec.metric}`', safe='.')}"
            f"&orderByAsc={ascending}"
        )
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri}  (then open http://127.0.0.1:5000{view})"
    base = ui_base(uri)
    return f"{base}{view}" if base is not None else uri


def train_sweep_champions(sweep: SweepStudy, **options: Any) -> ChampionResult:
    """Retrain a sweep's top configurations and register the best (options: those of
    :func:`hpo_core.champions.train_champions`)."""
    from hpo_core.champions import train_champions

    return train_champions(sweep, **options)


def compare_champion_runs(
    tracking_uri: str | None,
    *,
    studies: Sequence[str] = (),
    model_name: str | None = None,
    out: Path | None = None,
    on_table: Callable[[str], None] = print,
) -> list[Path]:
    """Champions across sweeps from MLflow: the table's text to ``on_table``, then the files
    written to ``out`` (champions.csv, champions.md, champions.png) when given."""
    from hpo_core.champions import compare_champions, format_table, write_comparison

    comparison = compare_champions(tracking_uri, studies=studies, model_name=model_name)
    on_table(format_table(comparison))
    return write_comparison(comparison, out) if out is not None else []

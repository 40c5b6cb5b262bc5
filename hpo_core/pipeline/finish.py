"""Finishing a sweep: analyse it, refine its next spec, write the report, and put both on the
sweep's MLflow parent run. `hpo analyze`, `hpo refine` and the DAG's finish step all call these.

The analysis only reports on a refinement it is given (:mod:`hpo_core.analysis` does not know
:mod:`hpo_core.refine`); composing the two is this layer's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError

if TYPE_CHECKING:
    from hpo_core.analysis import Decision, SweepAnalysis, TrialsTable
    from hpo_core.refine import Refinement
    from hpo_core.study import SweepStudy
    from hpo_core.tracking import Tracker

__all__ = [
    "Published",
    "StudyReport",
    "analyze_sweep",
    "publish",
    "refine_sweep",
    "report_study",
    "sweep_figures",
]


def analyze_sweep(
    sweep: SweepStudy,
    importance: Any = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> SweepAnalysis:
    """The analysis of a sweep as it stands, against its live budget."""
    from hpo_core.analysis import analyze_study

    return analyze_study(
        sweep.study,
        sweep.spec,
        n_trials=sweep.study.user_attrs.get("sweepflow.n_trials"),
        importance=importance,
        on_step=on_step,
    )


@dataclass(frozen=True)
class StudyReport:
    analysis: SweepAnalysis
    refinement: Refinement | None  # None without completed trials, or when refining failed
    files: list[Path]


def report_study(
    sweep: SweepStudy,
    out_dir: str | Path,
    *,
    importance: Any = None,
    plots: bool = True,
    on_step: Callable[[str], None] | None = None,
    on_file: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> StudyReport:
    """Analyse a sweep, refine its next spec, write the report: what `hpo analyze` and the
    DAG's finish step both do. A spec that cannot be refined costs only the next spec
    (``on_warning`` says why). Once the sweep has ended (its budget used, or stopped), the
    report's decision is stored in the study as its final one; a study an older version created
    gets its metric name here."""
    from hpo_core.analysis.report import write_report
    from hpo_core.errors import SpecError
    from hpo_core.pipeline.sweeps import record_decision
    from hpo_core.refine import refine_spec
    from hpo_core.study import name_metric, stop_flag, study_progress

    name_metric(sweep.study, sweep.spec.metric)
    analysis = analyze_sweep(sweep, importance, on_step=on_step)
    flag = stop_flag(sweep.study.user_attrs)
    if flag is not None and analysis.decision.action == "continue":
        analysis = _stopped(analysis, flag)
    if study_progress(sweep).done or flag is not None:
        record_decision(sweep, analysis.decision.as_dict(), final=True)
    refinement = None
    if analysis.summary.complete:
        try:
            refinement = refine_spec(analysis)
        except SpecError as exc:
            if on_warning is not None:
                on_warning(f"no next spec: {str(exc).splitlines()[0]}")
    files = write_report(analysis, out_dir, refinement=refinement, plots=plots, on_file=on_file)
    return StudyReport(analysis, refinement, files)


def _stopped(analysis: SweepAnalysis, flag: Any) -> SweepAnalysis:
    """The analysis of a sweep stopped before its rules said so (a person at a gate, `hpo stop`):
    the rules over its trials would still say continue, but the sweep's decision was a stop."""
    import dataclasses

    who = f" by {flag.by}" if flag.by else ""
    decision = dataclasses.replace(
        analysis.decision,
        action="stop",
        rule="stopped",
        message=f"stopped before the budget{who}: {flag.reason} (the rules said: "
        f"{analysis.decision.message})",
    )
    return dataclasses.replace(analysis, decision=decision)


def refine_sweep(sweep: SweepStudy, out: Path, *, study_name: str | None = None) -> Refinement:
    """The next spec from a sweep's evidence, written to ``out`` (`hpo refine`)."""
    from hpo_core.files import write_atomic
    from hpo_core.refine import refine_spec

    analysis = analyze_sweep(sweep)
    if not analysis.summary.complete:
        raise HpoError(f"{sweep.name}: no completed trials yet; nothing to refine from")
    refinement = refine_spec(analysis, study_name=study_name)
    write_atomic(out, refinement.text)
    return refinement


def sweep_figures(
    table: TrialsTable, decision: Decision
) -> tuple[dict[str, float], dict[str, str]]:
    """What a sweep's parent run logs so sweeps compare in one MLflow table: metrics
    ``best_<metric>`` and ``mean_<metric>`` (over completed trials), the trials by state and
    ``gpu_hours`` (each of the study's own trials' run time x the GPUs its worker recorded: 0 on
    CPU workers, left out when no worker recorded its devices); tags: the decision."""
    from hpo_core.analysis import gpu_hours

    s = table.summary
    metrics: dict[str, float] = {
        "trials_complete": s.complete,
        "trials_pruned": s.pruned,
        "trials_failed": s.failed,
        "trials_lost": s.lost,
    }
    if s.best_value is not None:
        metrics[f"best_{s.metric}"] = s.best_value
    if s.mean_value is not None:
        metrics[f"mean_{s.metric}"] = s.mean_value
    gpu = gpu_hours(table)
    if gpu is not None:
        metrics["gpu_hours"] = gpu
    tags = {"sweepflow.final_decision": decision.action, "sweepflow.final_rule": decision.rule}
    return metrics, tags


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did on a tracked sweep's parent run."""

    tracker: Tracker
    parent: str
    attached: bool  # False: the tracking server refused the copy (the files on disk remain)
    backfilled: int = 0  # trial runs logged now (lost to an outage while the sweep ran)
    warning: str | None = None  # best effort: why the back-fill failed (nothing attached then)


def publish(
    sweep: SweepStudy,
    path: Path,
    artifact_path: str | None,
    *,
    tracking_uri: str | None = None,
    backfill: bool = False,
    best_effort: bool = True,
    analysis: SweepAnalysis | None = None,
) -> Published | None:
    """Attach a report or a next spec to a tracked sweep's MLflow parent run, first back-filling
    the trial runs it lacks (``backfill``), then logging the ``analysis``'s figures on it
    (:func:`sweep_figures`); None for a sweep without a parent run. Best effort (the CLI): a
    tracking outage costs the copy, and the warning is returned, not raised."""
    from hpo_core.tracking import ATTR_PARENT_RUN, Tracker

    tracker = Tracker.for_study(sweep, tracking_uri)
    if tracker is None:
        return None
    parent = str(sweep.study.user_attrs[ATTR_PARENT_RUN])
    logged = 0
    if backfill:
        try:
            logged, _ = tracker.sync_trials(sweep)
        except HpoError as exc:
            if not best_effort:
                raise
            return Published(tracker, parent, False, warning=(str(exc).splitlines() or [""])[0])
    attached = tracker.attach(sweep, path, artifact_path)
    if analysis is not None:
        tracker.log_sweep_figures(sweep, *sweep_figures(analysis.table, analysis.decision))
    return Published(tracker, parent, attached, logged)

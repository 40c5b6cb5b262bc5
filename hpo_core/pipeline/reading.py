"""Reading a sweep beyond its report: two studies side by side, decision rules replayed over a
finished study, precision and recall per threshold. Each returns its result and the text a
front door prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hpo_core.pipeline.finish import analyze_sweep

if TYPE_CHECKING:
    from hpo_core.analysis import ComparisonRow, Replay
    from hpo_core.analysis.thresholds import ThresholdReport
    from hpo_core.study import SweepStudy

__all__ = ["Thresholds", "compare_sweeps", "replay_sweep", "sweep_thresholds"]


def compare_sweeps(a: SweepStudy, b: SweepStudy) -> list[ComparisonRow]:
    """The figures of two studies side by side (e.g. v2 vs v3); no importance, for speed."""
    from hpo_core.analysis import compare_analyses

    return compare_analyses(analyze_sweep(a, "none"), analyze_sweep(b, "none"))


def replay_sweep(sweep: SweepStudy, decision_file: str) -> tuple[Replay, str]:
    """The decision rules of ``decision_file`` (a spec with a ``decision:`` section, or the
    section alone) replayed over the study's trials: when each would have stopped."""
    from hpo_core.analysis import render_replay, replay_decision
    from hpo_core.spec import load_decision

    n_trials = sweep.study.user_attrs.get("sweepflow.n_trials") or sweep.spec.n_trials
    decision = load_decision(decision_file, direction=sweep.spec.direction, n_trials=n_trials)
    replay = replay_decision(
        sweep.study.get_trials(deepcopy=False), sweep.spec, decision, n_trials=n_trials
    )
    return replay, render_replay(replay)


@dataclass(frozen=True)
class Thresholds:
    report: ThresholdReport
    markdown: str  # thresholds.md's text
    files: list[Path] = field(default_factory=list)  # written, with an output folder


def sweep_thresholds(
    sweep: SweepStudy,
    out: Path | None = None,
    *,
    top: int | None = None,
    required_precision: float | None = None,
    min_predicted: int | None = None,
) -> Thresholds:
    """Precision and recall per decision threshold for the study's best models (objectives
    that record score histograms), written to ``out`` when given."""
    from hpo_core.analysis.thresholds import (
        render_markdown,
        threshold_report,
        write_threshold_report,
    )

    report = threshold_report(
        sweep, top=top, required_precision=required_precision, min_predicted=min_predicted
    )
    files = write_threshold_report(report, out) if out is not None else []
    return Thresholds(report, render_markdown(report), files)

"""Watching and steering studies from a front door: progress, the best trials, the stored spec,
the lineage, and the controls (stop, resume, budget, queued trials). Each opens what it needs
and returns results; the caller prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo_core.analysis import Lineage
    from hpo_core.study import StopFlag, StudyProgress, StudyRow, SweepStudy, TopTrial

__all__ = [
    "StudyStatus",
    "best_trials",
    "has_url_password",
    "list_sweeps",
    "mask_url",
    "queue_trials",
    "read_trials",
    "resume",
    "set_trial_budget",
    "stop",
    "study_status",
    "sweep_lineage",
    "sweep_lineage_of",
    "write_configs",
]


def mask_url(url: str) -> str:
    """A URL (or any text holding one) with its password replaced: safe to print or log."""
    from hpo_core.storage import mask_url as masked

    return masked(url)


def has_url_password(url: str) -> bool:
    from hpo_core.storage import has_url_password as has_password

    return has_password(url)


@dataclass(frozen=True)
class StudyStatus:
    sweep: SweepStudy
    progress: StudyProgress
    stopped: StopFlag | None  # the stop flag, when set


def study_status(sweep: SweepStudy) -> StudyStatus:
    from hpo_core.study import stop_flag, study_progress

    return StudyStatus(sweep, study_progress(sweep), stop_flag(sweep.study.user_attrs))


def list_sweeps(url: str) -> list[StudyRow]:
    """Every study of a storage, with its trials, budget and best value."""
    from hpo_core.storage import open_storage
    from hpo_core.study import list_studies

    return list_studies(open_storage(url, create=False))


def best_trials(sweep: SweepStudy, k: int) -> list[TopTrial]:
    from hpo_core.study import top_trials

    return top_trials(sweep, k)


def write_configs(sweep: SweepStudy, top: list[TopTrial], path: Path) -> Path:
    """The configurations (fixed + sampled parameters) of ``top`` as a YAML list, to ``path``."""
    import yaml

    from hpo_core.files import write_atomic

    configs = [
        {
            "rank": t.rank,
            "trial": t.number,
            "value": t.value,
            "params": {**sweep.spec.fixed, **t.params},
        }
        for t in top
    ]
    return write_atomic(path, yaml.safe_dump(configs, sort_keys=False))


def sweep_lineage(sweep: SweepStudy) -> tuple[Lineage, str]:
    """The chain of refined and warm-started studies ``sweep`` belongs to, and its text."""
    from hpo_core.analysis import render_lineage, study_lineage

    lineage = study_lineage(sweep.name, sweep.handle)
    return lineage, render_lineage(lineage)


def sweep_lineage_of(name: str, url: str) -> tuple[Lineage, str]:
    """The lineage of a study, or of a study family (``demo_synthetic`` for
    ``demo_synthetic_v1``, ``demo_synthetic_v2_refined``...): the chain of its newest study."""
    import optuna

    from hpo_core.champions import family_name
    from hpo_core.errors import StudyError
    from hpo_core.pipeline.sweeps import open_sweep
    from hpo_core.storage import open_storage

    try:
        return sweep_lineage(open_sweep(name, url))
    except StudyError:
        handle = open_storage(url, create=False)
        summaries = optuna.get_all_study_summaries(handle.storage, include_best_trial=False)
        family = [s for s in summaries if family_name(s.study_name) == name]
        if not family:
            raise  # neither a study nor a family: the study's own line lists what there is
        # the storages list studies in the order they were created: the last is the newest
        return sweep_lineage(open_sweep(family[-1].study_name, url))


def stop(sweep: SweepStudy, reason: str, *, now: bool = False) -> StopFlag:
    from hpo_core.study import stop_study

    return stop_study(sweep, reason, now=now)


def resume(sweep: SweepStudy) -> StopFlag | None:
    from hpo_core.study import resume_study

    return resume_study(sweep)


def set_trial_budget(sweep: SweepStudy, n_trials: int) -> tuple[int, int]:
    from hpo_core.study import set_budget

    return set_budget(sweep, n_trials)


def read_trials(params: str | None, file: str | None) -> list[dict[str, Any]]:
    """Trials to queue: ``NAME=VALUE,...`` or a YAML/JSON file (one mapping, or a list)."""
    from hpo_core.study import parse_assignments, read_trial_file

    return [parse_assignments(params)] if params else read_trial_file(file or "")


def queue_trials(sweep: SweepStudy, trials: list[dict[str, Any]]) -> tuple[int, int]:
    """Queue ``trials`` (those the study already has are skipped): (queued, skipped)."""
    from hpo_core.study import enqueue_trials

    return enqueue_trials(sweep, trials)

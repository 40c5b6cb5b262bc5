"""Before a sweep starts, and one worker joining it: read and validate a spec, the pre-launch
checklist, smoke trials, a worker process's loop. What `hpo validate/check/smoke/worker` run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo_core.checks import Checklist
    from hpo_core.spec import LoadedSpec
    from hpo_core.worker import SmokeResult, WorkerReport

__all__ = [
    "ObjectiveInfo",
    "SpecSummary",
    "hpo_home",
    "join_sweep",
    "objective_catalog",
    "prelaunch_checks",
    "read_spec",
    "smoke_trials",
    "validate_spec",
]


def hpo_home() -> Path:
    """The project data folder: $HPO_HOME, else ./.hpo (logs, journals, local runs)."""
    from hpo_core.storage import ENV_HOME

    return Path(os.environ.get(ENV_HOME) or ".hpo")


def read_spec(path: str | Path, *, airflow: bool | None = None) -> LoadedSpec:
    """A spec file, checked, with its objective known to the registry (:class:`SpecError`)."""
    from hpo_core.objectives import load_spec

    return load_spec(path, airflow=airflow)


@dataclass(frozen=True)
class SpecSummary:
    text: str  # the search space, one line per parameter
    objective: str
    available: bool  # the objective can run on this machine (its packages are installed)


def validate_spec(path: str) -> SpecSummary:
    """`hpo validate` for one file: the spec's own checks (a schedule checked by Airflow itself)
    and its objective's, every problem in one :class:`SpecError`; else its summary."""
    from hpo_core.errors import SpecError
    from hpo_core.objectives import check_objective_spec, is_available
    from hpo_core.spec import render_summary, summarize_spec

    loaded = read_spec(path, airflow=True)
    issues = check_objective_spec(loaded.spec)
    if issues:
        raise SpecError(issues, source=path)
    spec = loaded.spec
    text = render_summary(summarize_spec(spec), source=path)
    return SpecSummary(text, spec.objective, is_available(spec.objective))


def prelaunch_checks(
    config: str, *, storage_url: str, tracking: bool, tracking_uri: str | None, **options: Any
) -> Checklist:
    """The pre-launch checklist (options: those of :func:`hpo_core.checks.run_checks`), its disk
    check on the project data folder."""
    from hpo_core.checks import run_checks
    from hpo_core.errors import HpoError
    from hpo_core.pipeline.configs import objective_needs_gpu
    from hpo_core.tracking import resolve_tracking_uri

    try:  # the objective decides whether a GPU is wanted; a bad spec is the spec check's to say
        needs_gpu = objective_needs_gpu(read_spec(config).spec.objective)
    except HpoError:
        needs_gpu = True
    return run_checks(
        config,
        storage_url=storage_url,
        tracking_uri=resolve_tracking_uri(tracking_uri) if tracking else None,
        disk_path=hpo_home(),
        needs_gpu=needs_gpu,
        **options,
    )


def smoke_trials(config: str, **options: Any) -> list[SmokeResult]:
    """A spec's objective run briefly in a scratch study (options: those of
    :func:`hpo_core.worker.run_smoke_trials`)."""
    from hpo_core.worker import run_smoke_trials

    return run_smoke_trials(read_spec(config).spec, **options)


def join_sweep(
    config: str | None, study: str | None, storage_url: str, **options: Any
) -> WorkerReport:
    """One worker: creates the spec's study or joins it (``config``), or joins ``study`` and runs
    its stored spec; trials until the budget, a checkpoint or a stop (options: those of
    :func:`hpo_core.worker.run_worker`)."""
    from hpo_core.worker import run_worker

    return run_worker(read_spec(config) if config else str(study), storage_url, **options)


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    summary: str
    available: bool


def objective_catalog() -> list[ObjectiveInfo]:
    """The registered objectives, each with whether it can run here."""
    from hpo_core.objectives import is_available, registered_objectives

    return [ObjectiveInfo(o.name, o.summary, is_available(o.name)) for o in registered_objectives()]

"""Workers: run trials against a shared study, one process each; local sweeps launch N of them."""

from __future__ import annotations

from hpo_core.worker.cleanup import CleanedTrial, cleanup_stale_trials
from hpo_core.worker.smoke import SmokeResult, run_smoke_trials, smoke_spec
from hpo_core.worker.sweep import (
    ENV_WORKER_PASSTHROUGH,
    WORKER_ENV_KEEP,
    SweepResult,
    run_sweep,
    sweep_paths,
    worker_command,
    worker_environment,
)
from hpo_core.worker.worker import WorkerReport, run_worker

__all__ = [
    "ENV_WORKER_PASSTHROUGH",
    "WORKER_ENV_KEEP",
    "CleanedTrial",
    "SmokeResult",
    "SweepResult",
    "WorkerReport",
    "cleanup_stale_trials",
    "run_smoke_trials",
    "run_sweep",
    "run_worker",
    "smoke_spec",
    "sweep_paths",
    "worker_command",
    "worker_environment",
]

"""Workers: run trials against a shared study, one process each; local sweeps launch N of them."""

from __future__ import annotations

from hpo_core.worker.cleanup import CleanedTrial, cleanup_stale_trials
from hpo_core.worker.gpus import (
    CLI_NAMES,
    DAG_NAMES,
    GpuAssignment,
    assign_gpus,
    parse_gpus,
    visible_gpus,
)
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
    "CLI_NAMES",
    "DAG_NAMES",
    "ENV_WORKER_PASSTHROUGH",
    "WORKER_ENV_KEEP",
    "CleanedTrial",
    "GpuAssignment",
    "SmokeResult",
    "SweepResult",
    "WorkerReport",
    "assign_gpus",
    "cleanup_stale_trials",
    "parse_gpus",
    "run_smoke_trials",
    "run_sweep",
    "run_worker",
    "smoke_spec",
    "sweep_paths",
    "visible_gpus",
    "worker_command",
    "worker_environment",
]

"""Pre-launch checks: spec, storage, data, GPU, disk, dependencies, tracking, a smoke trial."""

from __future__ import annotations

from hpo_core.checks.prelaunch import (
    CHECK_NAMES,
    Checklist,
    CheckResult,
    check_data,
    check_dependencies,
    check_disk,
    check_gpu,
    check_smoke,
    check_spec,
    check_storage,
    check_tracking,
    no_gpu_needed,
    run_checks,
    verify_manifest,
)

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "Checklist",
    "check_data",
    "check_dependencies",
    "check_disk",
    "check_gpu",
    "check_smoke",
    "check_spec",
    "check_storage",
    "check_tracking",
    "no_gpu_needed",
    "run_checks",
    "verify_manifest",
]

"""Optuna studies built from sweep specs: storage of the spec, sampling, progress."""

from __future__ import annotations

from hpo_core.study.enqueue import (
    check_trial_params,
    enqueue_trials,
    parse_assignments,
    read_trial_file,
)
from hpo_core.study.sampling import (
    WeightedChoiceSampler,
    build_pruner,
    build_sampler,
    suggest_params,
)
from hpo_core.study.study import (
    ATTR_N_TRIALS,
    ATTR_SPEC_HASH,
    ATTR_SPEC_YAML,
    ATTR_STOP,
    StopFlag,
    StudyProgress,
    StudyRow,
    SweepStudy,
    TopTrial,
    create_study,
    current_actor,
    list_studies,
    load_study,
    require_running,
    resume_study,
    set_budget,
    stop_flag,
    stop_study,
    study_progress,
    top_trials,
)

__all__ = [
    "ATTR_N_TRIALS",
    "ATTR_SPEC_HASH",
    "ATTR_SPEC_YAML",
    "ATTR_STOP",
    "StopFlag",
    "StudyProgress",
    "StudyRow",
    "SweepStudy",
    "TopTrial",
    "WeightedChoiceSampler",
    "build_pruner",
    "build_sampler",
    "check_trial_params",
    "create_study",
    "current_actor",
    "enqueue_trials",
    "list_studies",
    "load_study",
    "parse_assignments",
    "read_trial_file",
    "require_running",
    "resume_study",
    "set_budget",
    "stop_flag",
    "stop_study",
    "study_progress",
    "suggest_params",
    "top_trials",
]

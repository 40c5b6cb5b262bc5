"""Objectives: what a trial computes, by registered name or ``package.module:function``; and
the spec loader entry points use, which knows the registered names."""

from __future__ import annotations

from hpo_core.objectives.context import TrialContext
from hpo_core.objectives.loader import load_spec, parse_spec
from hpo_core.objectives.registry import (
    ENV_ALLOWED_OBJECTIVES,
    DataReport,
    Objective,
    RegisteredObjective,
    allowed_objectives,
    check_objective_allowed,
    check_objective_spec,
    is_available,
    is_registered,
    objective_hard_limits,
    objective_name_problem,
    objective_requirements,
    registered_names,
    registered_objectives,
    require_objective_spec,
    resolve_champion_trainer,
    resolve_data_check,
    resolve_data_command,
    resolve_objective,
)

__all__ = [
    "ENV_ALLOWED_OBJECTIVES",
    "DataReport",
    "Objective",
    "RegisteredObjective",
    "TrialContext",
    "allowed_objectives",
    "check_objective_allowed",
    "check_objective_spec",
    "is_available",
    "is_registered",
    "load_spec",
    "objective_hard_limits",
    "objective_name_problem",
    "objective_requirements",
    "parse_spec",
    "registered_names",
    "registered_objectives",
    "require_objective_spec",
    "resolve_champion_trainer",
    "resolve_data_check",
    "resolve_data_command",
    "resolve_objective",
]

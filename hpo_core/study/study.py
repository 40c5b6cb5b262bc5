"""Studies: created once from a spec, stored with that spec, and found again from storage alone."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo_core import __version__
from hpo_core.errors import StudyError
from hpo_core.spec import LoadedSpec, SweepSpec, parse_spec
from hpo_core.storage import StorageHandle
from hpo_core.study.sampling import build_pruner, build_sampler

__all__ = [
    "ATTR_N_TRIALS",
    "ATTR_SPEC_HASH",
    "ATTR_SPEC_YAML",
    "ATTR_STOP",
    "StudyProgress",
    "StudyRow",
    "SweepStudy",
    "create_study",
    "list_studies",
    "load_study",
    "study_progress",
]

_log = logging.getLogger(__name__)

ATTR_SPEC_YAML = "sweepflow.spec_yaml"
ATTR_SPEC_HASH = "sweepflow.spec_hash"
ATTR_N_TRIALS = "sweepflow.n_trials"  # the live budget; raising n_trials extends a sweep
ATTR_STOP = "sweepflow.stop"  # set to a reason to make every worker stop after its trial
ATTR_VERSION = "sweepflow.version"

# Sections that may change on a running study: they decide how much and how to run,
# not what is searched, so trials stay comparable.
_MUTABLE_SECTIONS = frozenset(
    {
        "n_trials",
        "decision",
        "analysis",
        "refine",
        "champions",
        "worker",
        "description",
        "schedule",
    }
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class SweepStudy:
    """An Optuna study together with the spec it was created from and its storage."""

    study: optuna.Study
    loaded: LoadedSpec
    handle: StorageHandle

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def spec(self) -> SweepSpec:
        return self.loaded.spec

    @property
    def study_id(self) -> int:
        return int(self.study._study_id)


def _open(loaded: LoadedSpec, handle: StorageHandle, *, create: bool) -> optuna.Study:
    spec = loaded.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if create:
            return optuna.create_study(
                storage=handle.storage,
                study_name=spec.study_name,
                direction=spec.direction,
                sampler=build_sampler(spec),
                pruner=build_pruner(spec),
                load_if_exists=True,
            )
        return optuna.load_study(
            storage=handle.storage,
            study_name=spec.study_name,
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
        )


def create_study(loaded: LoadedSpec, handle: StorageHandle) -> SweepStudy:
    """Create the study, or join it if it exists with the same spec. Idempotent.

    A different search space under the same study name is refused: its trials would not be
    comparable. A changed budget (n_trials) or decision/worker section is taken and logged.
    """
    spec = loaded.spec
    with handle.study_lock(spec.study_name):
        study = _open(loaded, handle, create=True)
        attrs = study.user_attrs
        stored_hash = attrs.get(ATTR_SPEC_HASH)
        if stored_hash is None:
            study.set_user_attr(ATTR_SPEC_YAML, loaded.text)
            study.set_user_attr(ATTR_SPEC_HASH, loaded.hash)
            study.set_user_attr(ATTR_N_TRIALS, spec.n_trials)
            study.set_user_attr(ATTR_VERSION, __version__)
            _log.info("created study %s in %s", spec.study_name, handle.masked_url)
        elif stored_hash != loaded.hash:
            stored = parse_spec(attrs[ATTR_SPEC_YAML], source=f"study {spec.study_name}").spec
            changed = _changed_fields(stored.model_dump(mode="json"), spec.model_dump(mode="json"))
            fixed_part = [f for f in changed if f.split(".")[0] not in _MUTABLE_SECTIONS]
            direction_changed = stored.direction != spec.direction
            if fixed_part or direction_changed:
                shown = ", ".join(fixed_part[:6]) + (" ..." if len(fixed_part) > 6 else "")
                raise StudyError(
                    f"study {spec.study_name!r} already exists in {handle.masked_url} with a "
                    f"different search space (differs in: {shown}); give the new spec its own "
                    f"study_name, or run `hpo spec {spec.study_name}` to get the stored one"
                )
            study.set_user_attr(ATTR_SPEC_YAML, loaded.text)
            study.set_user_attr(ATTR_SPEC_HASH, loaded.hash)
            if stored.n_trials != spec.n_trials:
                study.set_user_attr(ATTR_N_TRIALS, spec.n_trials)
            _log.warning(
                "study %s: updated %s (n_trials %d -> %d)",
                spec.study_name,
                ", ".join(changed),
                stored.n_trials,
                spec.n_trials,
            )
    return SweepStudy(study=study, loaded=loaded, handle=handle)


def load_study(study_name: str, handle: StorageHandle) -> SweepStudy:
    """Load a study and its spec from the storage alone (no config file needed)."""
    try:
        summary = next(
            s
            for s in optuna.get_all_study_summaries(handle.storage, include_best_trial=False)
            if s.study_name == study_name
        )
    except StopIteration:
        names = [s.study_name for s in optuna.get_all_study_summaries(handle.storage, False)]
        import difflib

        close = difflib.get_close_matches(study_name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StudyError(
            f"no study named {study_name!r} in {handle.masked_url}{hint}; "
            "`hpo studies` lists the studies there"
        ) from None
    text = summary.user_attrs.get(ATTR_SPEC_YAML)
    if text is None:
        raise StudyError(
            f"study {study_name!r} in {handle.masked_url} was not created by sweepflow (it has "
            "no stored spec); create it with `hpo worker --config` or `hpo sweep`"
        )
    loaded = parse_spec(text, source=f"study {study_name}")
    return SweepStudy(study=_open(loaded, handle, create=False), loaded=loaded, handle=handle)


@dataclass(frozen=True)
class StudyProgress:
    """Where a sweep stands: counts by state, the best value, and the pace."""

    study_name: str
    n_trials: int  # the study-wide budget of finished trials
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best_value: float | None
    best_trial: int | None
    started_at: datetime | None
    trials_per_hour: float | None

    @property
    def finished(self) -> int:
        """Complete and pruned trials: what the budget counts."""
        return self.complete + self.pruned

    @property
    def failure_rate(self) -> float:
        ended = self.finished + self.failed
        return self.failed / ended if ended else 0.0

    @property
    def done(self) -> bool:
        return self.finished >= self.n_trials

    def line(self) -> str:
        best = f"{self.best_value:.4g} (#{self.best_trial})" if self.best_value is not None else "-"
        pace = f"{self.trials_per_hour:.1f}/h" if self.trials_per_hour else "-"
        return (
            f"{self.study_name}: {self.finished}/{self.n_trials} finished | "
            f"{self.complete} complete, {self.pruned} pruned, {self.failed} failed, "
            f"{self.running} running | best {best} | {pace}"
        )


def study_progress(sweep: SweepStudy) -> StudyProgress:
    trials = sweep.study.get_trials(deepcopy=False)
    counts = {state: 0 for state in TrialState}
    for trial in trials:
        counts[trial.state] += 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if complete:
        sign = 1.0 if sweep.spec.direction == "maximize" else -1.0
        best = max(complete, key=lambda t: sign * float(t.value or 0.0))
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    pace = None
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    if starts and ends and finished:
        hours = (max(ends) - min(starts)).total_seconds() / 3600
        pace = finished / hours if hours > 0 else None
    budget = sweep.study.user_attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials)
    return StudyProgress(
        study_name=sweep.name,
        n_trials=int(budget),
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        started_at=min(starts) if starts else None,
        trials_per_hour=pace,
    )


@dataclass(frozen=True)
class StudyRow:
    name: str
    n_trials: int | None
    trials: int
    best_value: float | None
    direction: str
    started_at: datetime | None
    sweepflow: bool  # created by sweepflow (has a stored spec)


def list_studies(handle: StorageHandle) -> list[StudyRow]:
    rows = []
    for s in optuna.get_all_study_summaries(handle.storage, include_best_trial=True):
        best = s.best_trial.value if s.best_trial is not None else None
        rows.append(
            StudyRow(
                name=s.study_name,
                n_trials=s.user_attrs.get(ATTR_N_TRIALS),
                trials=s.n_trials,
                best_value=best,
                direction=s.direction.name.lower(),
                started_at=s.datetime_start,
                sweepflow=ATTR_SPEC_HASH in s.user_attrs,
            )
        )
    return sorted(rows, key=lambda r: r.name)


def _changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and prefix.count(".") < 1:
            changed += _changed_fields(a, b, f"{path}.")
        elif a != b:
            changed.append(path)
    return changed


@dataclass(frozen=True)
class TopTrial:
    """One of a study's best completed trials."""

    rank: int  # 1 is the best
    number: int
    value: float
    params: dict[str, Any]  # the sampled parameters (fixed ones live in the spec)
    seconds: float | None  # wall time of the trial
    attrs: dict[str, Any]  # what the objective recorded (chance_level, best_epoch, n_params, ...)


def top_trials(sweep: SweepStudy, k: int = 5, *, keep: tuple[str, ...] = ()) -> list[TopTrial]:
    """The ``k`` best completed trials, best first (ties: the earlier trial first). Internal
    ``sweepflow.*`` attributes are left out of ``attrs`` except those named in ``keep``."""
    sign = -1.0 if sweep.spec.direction == "maximize" else 1.0
    complete = [
        t
        for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None
    ]
    complete.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    return [
        TopTrial(
            rank=rank,
            number=t.number,
            value=float(t.value or 0.0),
            params=dict(t.params),
            seconds=t.duration.total_seconds() if t.duration else None,
            attrs={
                k: v for k, v in t.user_attrs.items() if not k.startswith("sweepflow.") or k in keep
            },
        )
        for rank, t in enumerate(complete[:k], start=1)
    ]

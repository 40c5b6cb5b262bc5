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
from hpo_core.errors import StudyError, StudyStopped
from hpo_core.spec import LoadedSpec, SweepSpec, parse_spec
from hpo_core.storage import StorageHandle
from hpo_core.study.sampling import build_pruner, build_sampler

__all__ = [
    "ATTR_N_TRIALS",
    "ATTR_SPEC_HASH",
    "ATTR_SPEC_YAML",
    "ATTR_STOP",
    "StopFlag",
    "StudyProgress",
    "StudyRow",
    "SweepStudy",
    "create_study",
    "current_actor",
    "list_studies",
    "load_study",
    "require_running",
    "resume_study",
    "set_budget",
    "stop_flag",
    "stop_study",
    "study_progress",
]

_log = logging.getLogger(__name__)

ATTR_SPEC_YAML = "sweepflow.spec_yaml"
ATTR_SPEC_HASH = "sweepflow.spec_hash"
ATTR_N_TRIALS = "sweepflow.n_trials"  # the live budget; raising n_trials extends a sweep
ATTR_STOP = "sweepflow.stop"  # {reason, by, at[, now]}: workers stop after (or in) their trial
ATTR_VERSION = "sweepflow.version"
# The trial attribute of a lost trial (hpo_core.worker.lost.ATTR_LOST_CAUSE; studies sit below it)
_LOST_CAUSE = "lost_cause"

# A worker runs the spec stored with its study, never the file it was started with. A file that
# differs only in these fields is joined with a warning (they do not change what a trial does;
# the budget changes through `hpo budget`); any other difference is refused. `worker` is not
# here: heartbeat and grace settings are fixed at creation, since a worker with a shorter grace
# period would fail a live peer's trial.
_NOT_RUN_BY_WORKERS = frozenset(
    {"n_trials", "decision", "analysis", "refine", "champions", "description", "schedule"}
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
    """Create the study from ``loaded``, or join the existing one. Idempotent.

    The stored spec is never rewritten: joining returns the study with its stored spec. A file
    whose search space, objective, sampler, pruner, data or worker settings differ is refused,
    naming the fields; differences in the budget and in the sections read after the sweep
    (decision, analysis, refine, champions, description, schedule) are joined with a warning.
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
            return SweepStudy(study=study, loaded=loaded, handle=handle)
    stored = parse_spec(attrs[ATTR_SPEC_YAML], source=f"study {spec.study_name}")
    if stored_hash != loaded.hash:
        _check_joinable(stored.spec, loaded, handle, attrs)
    return SweepStudy(study=study, loaded=stored, handle=handle)


def _check_joinable(
    stored: SweepSpec, loaded: LoadedSpec, handle: StorageHandle, attrs: dict[str, Any]
) -> None:
    """Refuse a file that would run trials differently from the stored spec; warn about the
    fields that do not change a trial."""
    name = stored.study_name
    changed = _changed_fields(stored.model_dump(mode="json"), loaded.spec.model_dump(mode="json"))
    refused = [f for f in changed if f.split(".")[0] not in _NOT_RUN_BY_WORKERS]
    if refused:
        shown = ", ".join(refused[:6]) + (" ..." if len(refused) > 6 else "")
        fixed = [f for f in refused if f in ("worker.heartbeat_interval", "worker.grace_period")]
        why = (
            f"; {' and '.join(fixed)} are fixed when the study is created (a worker with other "
            "values would fail a live peer's trial)"
            if fixed
            else ""
        )
        raise StudyError(
            f"{loaded.source}: study {name!r} in {handle.masked_url} was created from a different "
            f"spec (differs in: {shown}){why}; run the stored spec (`hpo worker --study {name}`, "
            f"or `hpo spec {name}` to get it), or give the new spec its own study_name"
        )
    budget = int(attrs.get(ATTR_N_TRIALS, stored.n_trials))
    notes = [f for f in changed if f != "n_trials"]
    if loaded.spec.n_trials != budget:
        _log.warning(
            "%s: n_trials %d differs from study %s's budget of %d, which stays; change the "
            "budget with `hpo budget %s %d`",
            loaded.source,
            loaded.spec.n_trials,
            name,
            budget,
            name,
            loaded.spec.n_trials,
        )
    if notes:
        _log.warning(
            "%s: %s differ from study %s's stored spec, which stays (`hpo spec %s` shows it)",
            loaded.source,
            ", ".join(notes),
            name,
            name,
        )


@dataclass(frozen=True)
class StopFlag:
    """A study's stop flag: why, who set it and when (None when not recorded)."""

    reason: str
    by: str | None = None
    at: str | None = None
    now: bool = False  # `hpo stop --now`: running trials save a checkpoint and are re-queued

    def line(self, study_name: str) -> str:
        who = f" by {self.by}" if self.by else ""
        when = f" at {self.at}" if self.at else ""
        return (
            f"study {study_name!r} is stopped ({self.reason}; set{who}{when}); "
            f"`hpo resume {study_name}` clears the stop flag"
        )


def stop_flag(attrs: dict[str, Any]) -> StopFlag | None:
    """The stop flag in a study's user attributes, if set (True and plain reasons, as older
    versions wrote them, are read too)."""
    value = attrs.get(ATTR_STOP)
    if not value:
        return None
    if isinstance(value, dict):
        reason = str(value.get("reason") or "stop requested")
        return StopFlag(reason, value.get("by"), value.get("at"), value.get("now") is True)
    return StopFlag("stop requested" if value is True else str(value))


def stop_study(
    sweep: SweepStudy, reason: str, *, by: str | None = None, now: bool = False
) -> StopFlag:
    """Set the stop flag: every worker finishes its current trial and exits, and new workers
    refuse to start until :func:`resume_study`. With ``now``, running trials stop at their next
    batch boundary instead (those of the shared training loop; workers see the flag within a
    heartbeat interval, or a poll interval on the journal), save a checkpoint, and are
    re-queued to resume after :func:`resume_study`."""
    from datetime import UTC

    flag = StopFlag(
        reason, by or current_actor(), datetime.now(UTC).isoformat(timespec="seconds"), now
    )
    record: dict[str, Any] = {"reason": flag.reason, "by": flag.by, "at": flag.at}
    if now:
        record["now"] = True
    sweep.study.set_user_attr(ATTR_STOP, record)
    return flag


def resume_study(sweep: SweepStudy) -> StopFlag | None:
    """Clear the stop flag; returns the flag that was set (None if there was none)."""
    flag = stop_flag(sweep.study.user_attrs)
    if flag is not None:
        sweep.study.set_user_attr(ATTR_STOP, None)
    return flag


def require_running(sweep: SweepStudy) -> None:
    """Raise :class:`StudyStopped` when the study's stop flag is set."""
    flag = stop_flag(sweep.study.user_attrs)
    if flag is not None:
        raise StudyStopped(flag.line(sweep.name))


def current_actor() -> str:
    """``user@host`` of this process, for the records of who stopped or changed a study."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        import os

        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def set_budget(sweep: SweepStudy, n_trials: int) -> tuple[int, int]:
    """Change the study-wide budget (the one mutable setting of a running study); returns
    (old, new). Refused below the trials already finished, which cannot be undone."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise StudyError(f"n_trials: must be a positive whole number, but got {n_trials!r}")
    with sweep.handle.study_lock(sweep.name):
        old = int(sweep.study.user_attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials))
        finished = len(
            sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        if n_trials < finished:
            raise StudyError(
                f"n_trials: study {sweep.name!r} has {finished} finished trials already, so its "
                f"budget cannot go below {finished} (asked {n_trials})"
            )
        if n_trials != old:
            sweep.study.set_user_attr(ATTR_N_TRIALS, n_trials)
            _log.info("study %s: budget %d -> %d", sweep.name, old, n_trials)
    return old, n_trials


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
    failed: int  # failed for their own reasons
    running: int
    waiting: int
    best_value: float | None
    best_trial: int | None
    started_at: datetime | None
    trials_per_hour: float | None
    lost: int = 0  # FAIL trials lost to the infrastructure (dead or preempted workers), re-queued

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
            f"{self.lost} lost, {self.running} running | best {best} | {pace}"
        )


def study_progress(sweep: SweepStudy) -> StudyProgress:
    trials = sweep.study.get_trials(deepcopy=False)
    counts = {state: 0 for state in TrialState}
    lost = 0
    for trial in trials:
        counts[trial.state] += 1
        lost += trial.state == TrialState.FAIL and _LOST_CAUSE in trial.user_attrs
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
        failed=counts[TrialState.FAIL] - lost,
        lost=lost,
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

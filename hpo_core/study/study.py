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
from hpo_core.storage.optuna_internals import study_id_of
from hpo_core.study.sampling import ATTR_PROBE_OF, build_pruner, build_sampler
from hpo_core.study.warm import (
    ATTR_CARRIED_FROM,
    ATTR_WARM_START,
    WarmStart,
    carried_count,
    carry_trials,
    check_warm_source,
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
    "check_warm_start",
    "create_study",
    "current_actor",
    "list_studies",
    "load_study",
    "name_metric",
    "require_running",
    "resume_study",
    "set_budget",
    "stop_flag",
    "stop_study",
    "study_progress",
    "warm_start_of",
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
    {
        "n_trials",
        "decision",
        "analysis",
        "refine",
        "champions",
        "description",
        "schedule",
        "warm_start",  # read once, when the study is created
        "next",  # read by the DAGs after a sweep (generations)
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
        return study_id_of(self.study)


def name_metric(study: optuna.Study, metric: str) -> bool:
    """Name the study's objective after the spec's metric, so optuna-dashboard and Optuna's
    plots label it ``val_accuracy``, not "Objective 0". Set when a study is created; the finish
    step sets it on a study an older version created. True when it was set now."""
    if study.metric_names == [metric]:
        return False
    with warnings.catch_warnings():  # experimental since Optuna 3.2, unchanged in 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])
    return True


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


def create_study(
    loaded: LoadedSpec, handle: StorageHandle, *, warm_start: str | None = None
) -> SweepStudy:
    """Create the study from ``loaded``, or join the existing one. Idempotent.

    The stored spec is never rewritten: joining returns the study with its stored spec. A file
    whose search space, objective, sampler, pruner, data or worker settings differ is refused,
    naming the fields; differences in the budget and in the sections read after the sweep
    (decision, analysis, refine, champions, description, schedule, warm_start) are joined with
    a warning.

    A new study with a warm start (the spec's ``warm_start.study``, or ``warm_start``: the name
    given to `hpo sweep --warm-start-from`) is created with the fitting finished trials of that
    study in the same storage (:mod:`hpo_core.study.warm`), under the study lock: however many
    workers create it at once, and after an interrupted copy, each trial is carried once.
    """
    spec = loaded.spec
    source_name, field = _warm_source(spec, warm_start)
    with handle.study_lock(spec.study_name):
        source = None
        before = _stored_attrs(handle, spec.study_name)
        if before is None or ATTR_SPEC_HASH not in before:
            # a creation interrupted mid-copy names its source in a pending record
            pending = (before or {}).get(ATTR_WARM_START)
            if source_name is None and isinstance(pending, dict):
                source_name, field = str(pending.get("study")), ATTR_WARM_START
            if source_name is not None:
                # refused before anything is written: a bad source leaves no study behind
                source = _warm_source_study(source_name, spec, handle, field)
        study = _open(loaded, handle, create=True)
        attrs = study.user_attrs
        stored_hash = attrs.get(ATTR_SPEC_HASH)
        if stored_hash is None:
            if source is not None:
                # pending record, copy, final record, then the spec: an interrupted creation is
                # created again by the next caller, and carry_trials skips what it had copied
                study.set_user_attr(ATTR_WARM_START, {"study": source.name, "pending": True})
                done = carry_trials(source.study, source.spec, study, spec)
                study.set_user_attr(ATTR_WARM_START, done.record())
            name_metric(study, spec.metric)
            study.set_user_attr(ATTR_SPEC_YAML, loaded.text)
            study.set_user_attr(ATTR_SPEC_HASH, loaded.hash)
            study.set_user_attr(ATTR_N_TRIALS, spec.n_trials)
            study.set_user_attr(ATTR_VERSION, __version__)
            _log.info("created study %s in %s", spec.study_name, handle.masked_url)
            return SweepStudy(study=study, loaded=loaded, handle=handle)
    stored = parse_spec(attrs[ATTR_SPEC_YAML], source=f"study {spec.study_name}")
    if stored_hash != loaded.hash:
        _check_joinable(stored.spec, loaded, handle, attrs)
    if warm_start is not None:
        _check_warm_started(spec.study_name, warm_start, attrs)
    return SweepStudy(study=study, loaded=stored, handle=handle)


def _warm_source(spec: SweepSpec, flag: str | None) -> tuple[str | None, str]:
    """The study to warm-start from, and the field that named it (for error lines)."""
    named = spec.warm_start.study if spec.warm_start is not None else None
    if flag is not None and named is not None and flag != named:
        raise StudyError(
            f"--warm-start-from: names {flag!r}, but the spec's warm_start.study names "
            f"{named!r}; give one of them"
        )
    if flag is not None and flag == spec.study_name:
        raise StudyError(
            f"--warm-start-from: names the study being created ({flag!r}); name the earlier "
            "study whose trials start this one"
        )
    if flag is not None:
        return flag, "--warm-start-from"
    return named, "warm_start.study"


def _stored_attrs(handle: StorageHandle, study_name: str) -> dict[str, Any] | None:
    """The study's user attributes, or None when there is no such study."""
    try:
        study_id = handle.storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return handle.storage.get_study_user_attrs(study_id)


def _warm_source_study(name: str, spec: SweepSpec, handle: StorageHandle, field: str) -> SweepStudy:
    try:
        source = load_study(name, handle)
    except StudyError as exc:
        raise StudyError(f"{field}: {exc}; or remove the warm start") from None
    check_warm_source(source.spec, spec, field=field)
    return source


def _check_warm_started(study_name: str, flag: str, attrs: dict[str, Any]) -> None:
    """`hpo sweep --warm-start-from` on an existing study: fine if it was warm-started from that
    study (a restarted sweep); refused otherwise, since a warm start fills a new study only."""
    record = attrs.get(ATTR_WARM_START)
    if isinstance(record, dict) and record.get("study") == flag:
        return
    was = (
        f"warm-started from {record.get('study')!r}"
        if isinstance(record, dict)
        else "without a warm start"
    )
    raise StudyError(
        f"--warm-start-from: study {study_name!r} exists already, created {was}; a warm start "
        "fills a new study only: give the spec another study_name, or drop --warm-start-from "
        "to go on with this one"
    )


def check_warm_start(
    loaded: LoadedSpec, handle: StorageHandle, *, warm_start: str | None = None
) -> str | None:
    """The study :func:`create_study` would warm-start ``loaded``'s study from (None without a
    warm start), checked as it would check it but without writing anything: a caller that
    prints before creating the study (`hpo sweep`) refuses a bad source in one line first."""
    spec = loaded.spec
    source_name, field = _warm_source(spec, warm_start)
    if source_name is None:
        return None
    attrs = _stored_attrs(handle, spec.study_name)
    if attrs is None or ATTR_SPEC_HASH not in attrs:
        _warm_source_study(source_name, spec, handle, field)
    elif warm_start is not None:
        _check_warm_started(spec.study_name, warm_start, attrs)
    return source_name


def warm_start_of(sweep: SweepStudy) -> WarmStart | None:
    """What the study's warm start carried in, or None for a study started cold."""
    record = sweep.study.user_attrs.get(ATTR_WARM_START)
    return WarmStart.from_record(record) if isinstance(record, dict) else None


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
    (old, new). Refused below the trials already finished, which cannot be undone (trials
    carried in by a warm start are not in the budget)."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise StudyError(f"n_trials: must be a positive whole number, but got {n_trials!r}")
    with sweep.handle.study_lock(sweep.name):
        attrs = sweep.study.user_attrs
        old = int(attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials))
        finished = len(
            sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        ) - carried_count(attrs)
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
    carried: int = 0  # of complete and pruned, trials carried in by a warm start

    @property
    def finished(self) -> int:
        """Complete and pruned trials run by this study: what the budget counts."""
        return self.complete + self.pruned - self.carried

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
            f"{self.study_name}: {self.finished}/{self.n_trials} finished"
            + (f" (+{self.carried} carried)" if self.carried else "")
            + " | "
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
    # the pace of this study's own trials: carried ones keep the times they ran at
    own = [t for t in trials if ATTR_CARRIED_FROM not in t.user_attrs]
    starts = [t.datetime_start for t in own if t.datetime_start is not None]
    ends = [t.datetime_complete for t in own if t.datetime_complete is not None]
    pace = None
    attrs = sweep.study.user_attrs
    carried = carried_count(attrs)
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] - carried
    if starts and ends and finished:
        hours = (max(ends) - min(starts)).total_seconds() / 3600
        pace = finished / hours if hours > 0 else None
    budget = attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials)
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
        carried=carried,
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
    ``sweepflow.*`` attributes are left out of ``attrs`` except those named in ``keep``. Noise
    probes are left out: each repeats a configuration of an earlier trial with another seed."""
    sign = -1.0 if sweep.spec.direction == "maximize" else 1.0
    complete = [
        t
        for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and ATTR_PROBE_OF not in t.user_attrs
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

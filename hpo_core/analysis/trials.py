"""The trials of a study as one table, and the sweep's headline figures."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from hpo_core.spec import SweepSpec

__all__ = [
    "SweepSummary",
    "TrialOrigin",
    "TrialsTable",
    "build_trials_table",
    "carried_and_new",
    "coerce_value",
]

PARAM = "param."  # column prefix of parameters
ATTR = "attr."  # column prefix of user attributes
# Trial attributes the worker writes (hpo_core.worker.lost): why a trial was lost to the
# infrastructure, and the worker that ran it ({"gpus": [...], ...}).
LOST_CAUSE = "lost_cause"
WORKER = "worker"
# The trial attribute of a trial a warm start carried in (hpo_core.study.warm.ATTR_CARRIED_FROM)
CARRIED_FROM = "carried_from"


@dataclass(frozen=True)
class SweepSummary:
    study_name: str
    direction: str
    metric: str
    n_trials: int  # the budget
    total: int  # trials in the study, any state
    complete: int
    pruned: int
    failed: int  # FAIL trials that failed for their own reasons (not lost)
    running: int
    waiting: int
    failure_rate: float  # failed / (complete + pruned + failed); lost trials are not in it
    best_value: float | None
    best_trial: int | None
    mean_value: float | None  # over completed trials
    median_value: float | None
    trials_per_hour: float | None
    chance_level: float | None  # what the objective recorded (median over trials), if anything
    # FAIL trials ended by the infrastructure (a dead, preempted or cut-off worker), re-queued
    lost: int = 0
    lost_rate: float = 0.0  # lost / (complete + pruned + failed + lost)
    hours_lost: float = 0.0  # the lost trials' run time
    gpu_hours_lost: float = 0.0  # each lost trial's run time x the GPUs its worker had
    lost_causes: dict[str, int] = field(default_factory=dict)  # kind of cause -> trials, most first
    # of complete and pruned, trials a warm start carried in from an earlier study: evidence,
    # but not this sweep's work (not in the budget, the failure rate or the pace)
    carried: int = 0

    @property
    def ended(self) -> int:
        """Trials of this study that ended for their own reasons: what the failure rate is
        taken over."""
        return self.complete + self.pruned + self.failed - self.carried


@dataclass
class TrialsTable:
    """One row per trial: number, state, value, duration_s, ``param.<name>``, ``attr.<name>``."""

    frame: pd.DataFrame
    spec: SweepSpec
    summary: SweepSummary
    trials: tuple[FrozenTrial, ...] = ()  # the rows' trials, in row order (for Optuna's models)

    @property
    def complete(self) -> pd.DataFrame:
        """Completed trials with a finite value, best first."""
        done = self.frame[(self.frame["state"] == "COMPLETE") & self.frame["value"].notna()]
        return done.sort_values(
            ["value", "number"], ascending=[self.spec.direction == "minimize", True]
        )

    def param(self, name: str) -> str:
        return PARAM + name

    def head(self, n: int) -> TrialsTable:
        """The first ``n`` rows as a table of their own, summary recomputed (a replay decides
        on the trials that had ended by then)."""
        frame = self.frame.iloc[:n]
        return TrialsTable(
            frame=frame,
            spec=self.spec,
            summary=_summary(frame, self.spec, self.summary.n_trials),
            trials=self.trials[:n],
        )

    def export(self) -> pd.DataFrame:
        """The table for a CSV: parameters and scalar attributes as plain columns."""
        frame = self.frame.copy()
        frame.columns = [str(c).replace(PARAM, "").replace(ATTR, "attr_") for c in frame.columns]
        return frame


def coerce_value(param: Any, value: Any) -> Any:
    """A value read back from a table (where an int column with gaps turns float) as the
    parameter's own type: int for ints, the matching choice for categoricals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if param.type == "int":
        return round(float(value))
    if param.type == "bool":
        return bool(value)
    if param.type == "categorical":
        for choice in param.choices or []:
            if choice == value and type(choice) is not bool:
                return choice
            if choice is value:
                return choice
        return value
    return float(value)


def _attr(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def build_trials_table(
    trials: Sequence[FrozenTrial], spec: SweepSpec, *, n_trials: int | None = None
) -> TrialsTable:
    rows = []
    kept: dict[str, bool] = {}  # attribute key -> shown; decided once per key, not per trial

    def keep(key: str) -> bool:
        if key not in kept:
            kept[key] = (
                not key.startswith("sweepflow.")
                and key != "fail_traceback"
                and not spec.metrics.is_forbidden(key)
            )
        return kept[key]

    for t in trials:
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "duration_s": t.duration.total_seconds() if t.duration else None,
            "started": t.datetime_start,
            "completed": t.datetime_complete,
            "last_step": t.last_step,
            "carried": CARRIED_FROM in t.user_attrs,  # by a warm start, from an earlier study
        }
        for name, value in t.params.items():
            row[PARAM + name] = value
        for key, value in t.user_attrs.items():
            if keep(key):
                row[ATTR + key] = _attr(value)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(
            columns=[
                "number",
                "state",
                "value",
                "duration_s",
                "started",
                "completed",
                "last_step",
                "carried",
            ]
        )
    for name in spec.param_ranges:
        if PARAM + name not in frame:
            frame[PARAM + name] = None
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame.loc[~frame["value"].map(lambda v: v is not None and math.isfinite(v)), "value"] = None
    table = TrialsTable(
        frame=frame, spec=spec, summary=_summary(frame, spec, n_trials), trials=tuple(trials)
    )
    return table


def _summary(frame: pd.DataFrame, spec: SweepSpec, n_trials: int | None) -> SweepSummary:
    counts = frame["state"].value_counts().to_dict() if len(frame) else {}
    complete = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()]
    best_value = best_trial = None
    if len(complete):
        idx = (
            complete["value"].idxmax()
            if spec.direction == "maximize"
            else complete["value"].idxmin()
        )
        best_value = float(complete.at[idx, "value"])
        best_trial = int(complete.at[idx, "number"])
    lost = _lost_trials(frame)
    failed = counts.get("FAIL", 0) - len(lost)
    carried = frame["carried"].astype(bool)  # finished trials only: a warm start copies no other
    finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) - int(carried.sum())
    ended = finished + failed
    lost_hours = lost["duration_s"].fillna(0.0) / 3600
    pace = None
    own = frame[~carried]  # carried trials keep the times they ran at, in an earlier study
    if finished and own["started"].notna().any() and own["completed"].notna().any():
        hours = (own["completed"].max() - own["started"].min()).total_seconds() / 3600
        pace = finished / hours if hours > 0 else None
    chance = None
    if ATTR + "chance_level" in frame:
        levels = pd.to_numeric(frame[ATTR + "chance_level"], errors="coerce").dropna()
        chance = float(levels.median()) if len(levels) else None
    return SweepSummary(
        study_name=spec.study_name,
        direction=spec.direction,
        metric=spec.metric,
        n_trials=n_trials if n_trials is not None else spec.n_trials,
        total=len(frame),
        complete=counts.get("COMPLETE", 0),
        pruned=counts.get("PRUNED", 0),
        failed=failed,
        running=counts.get("RUNNING", 0),
        waiting=counts.get("WAITING", 0),
        failure_rate=failed / ended if ended else 0.0,
        best_value=best_value,
        best_trial=best_trial,
        mean_value=float(complete["value"].mean()) if len(complete) else None,
        median_value=float(complete["value"].median()) if len(complete) else None,
        trials_per_hour=pace,
        chance_level=chance,
        lost=len(lost),
        lost_rate=len(lost) / (ended + len(lost)) if len(lost) else 0.0,
        hours_lost=float(lost_hours.sum()),
        gpu_hours_lost=float((lost_hours * lost[ATTR + WORKER].map(_gpus)).sum()),
        carried=int(carried.sum()),
        lost_causes=dict(Counter(lost[ATTR + LOST_CAUSE].map(cause_kind)).most_common()),
    )


def _lost_trials(frame: pd.DataFrame) -> pd.DataFrame:
    if ATTR + LOST_CAUSE not in frame:
        return frame.iloc[0:0].assign(**{ATTR + LOST_CAUSE: None, ATTR + WORKER: None})
    lost = frame[(frame["state"] == "FAIL") & frame[ATTR + LOST_CAUSE].notna()]
    return lost if ATTR + WORKER in lost else lost.assign(**{ATTR + WORKER: None})


def cause_kind(cause: Any) -> str:
    """The kind of a ``lost_cause``: its text before the first colon ("heartbeat", "orphan",
    "dead worker", "preempted", "cleaned up by hpo cleanup")."""
    return str(cause).split(":", 1)[0].strip() or "unknown"


def _gpus(worker: Any) -> int:
    """GPUs of the worker recorded as a trial's ``worker`` attribute (a JSON string in the
    table): ``gpus`` is the list of its devices (a count is taken as is); none recorded: 0."""
    try:
        gpus = json.loads(worker).get("gpus") if isinstance(worker, str) else None
    except (ValueError, AttributeError):
        return 0
    if isinstance(gpus, list):
        return len(gpus)
    return gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else 0


@dataclass(frozen=True)
class TrialOrigin:
    """The finished trials of one origin in a study: carried in by a warm start, or new."""

    origin: str  # "carried" (from ``source``) or "new"
    source: str | None  # the study carried trials came from; None for new ones
    finished: int  # complete + pruned
    complete: int
    pruned: int
    best_value: float | None
    best_trial: int | None
    mean_value: float | None  # over completed trials


def carried_and_new(table: TrialsTable) -> tuple[TrialOrigin, TrialOrigin] | None:
    """The study's finished trials split into those a warm start carried in and its own (None
    when nothing was carried): the report shows both, the rest of the analysis uses all."""
    frame = table.frame
    carried = frame["carried"].astype(bool)
    if not carried.any():
        return None
    source = None
    if ATTR + CARRIED_FROM in frame:
        first = frame.loc[carried, ATTR + CARRIED_FROM].dropna()
        source = json.loads(first.iloc[0]).get("study") if len(first) else None
    origins = []
    for name, rows in (("carried", frame[carried]), ("new", frame[~carried])):
        done = rows[(rows["state"] == "COMPLETE") & rows["value"].notna()]
        best = None
        if len(done):
            maximize = table.spec.direction == "maximize"
            best = done["value"].idxmax() if maximize else done["value"].idxmin()
        origins.append(
            TrialOrigin(
                origin=name,
                source=source if name == "carried" else None,
                finished=int(rows["state"].isin(("COMPLETE", "PRUNED")).sum()),
                complete=len(done),
                pruned=int((rows["state"] == "PRUNED").sum()),
                best_value=float(done.at[best, "value"]) if best is not None else None,
                best_trial=int(done.at[best, "number"]) if best is not None else None,
                mean_value=float(done["value"].mean()) if len(done) else None,
            )
        )
    return origins[0], origins[1]


def gpu_hours(table: TrialsTable) -> float | None:
    """GPU-hours this study's own trials ran (any state; carried ones ran in an earlier study):
    each trial's run time x the GPUs its worker recorded. None when no worker recorded its
    devices."""
    frame = table.frame
    if ATTR + WORKER not in frame or not frame[ATTR + WORKER].notna().any():
        return None
    own = frame[~frame["carried"].astype(bool)]
    if own.empty:  # only carried trials: nothing ran here (and an empty column has no dtype)
        return 0.0
    hours = own["duration_s"].fillna(0.0) / 3600
    return float((hours * own[ATTR + WORKER].map(_gpus)).sum())

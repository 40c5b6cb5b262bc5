"""Replaying decision rules over a finished study (``hpo replay``), so a team can set its
thresholds on past sweeps.

The trials are taken in the order they ended (``datetime_complete``, the number breaking ties),
after those a warm start carried in from an earlier study (there from the start, never a place to
stop, and not counted towards checkpoints).
After each one, :func:`~hpo_core.analysis.decide.decide` judges the table of the trials that had
ended by then: once per rule, with that rule alone switched on, to find the first trial after
which it would have ended the sweep; and at each checkpoint with every rule on, as the sweep's
gates decide. There is no second implementation of the rules: what replay says is what
``hpo decide`` would have said. The regret bound is costly (a Gaussian process), so it is judged
only when a checkpoint is crossed, as the gates judge it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from hpo_core.analysis.decide import Decision, decide
from hpo_core.analysis.trials import TrialsTable, build_trials_table
from hpo_core.spec import DecisionSpec, SweepSpec
from hpo_core.study.warm import ATTR_CARRIED_FROM

__all__ = ["GateReplay", "Replay", "RuleReplay", "StopPoint", "render_replay", "replay_decision"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# every rule off: a rate above 1 never happens; the budget is the table's and ends the replay
_ALL_OFF: dict[str, Any] = {
    "max_failure_rate": 1.0,
    "max_lost_rate": None,
    "target": None,
    "stop_if_best_worse_than": None,
    "plateau_trials": None,
    "regret_bound": None,
    "on_track_if_best_better_than": None,
}


@dataclass(frozen=True)
class StopPoint:
    """Where the sweep would have ended, what it had then, and what ending there saves."""

    action: str  # stop or done
    rule: str
    message: str  # decide()'s message at that point
    after_trial: int  # the number of the trial whose end fired the rule
    ended: int  # trials ended by then, any state (its place in the order trials ended)
    finished: int  # completed + pruned by then: what checkpoints and the budget count
    checkpoint: int | None  # the last checkpoint reached by then
    best: float | None  # the best value then
    best_missed: float | None  # how much better the final best is (0: nothing missed)
    trials_saved: int  # trials that ended after it
    hours_saved: float  # their run time
    gpu_hours_saved: float | None  # their run time x their worker's GPUs; None: none recorded
    wall_hours_saved: float | None  # from this trial's end to the last one's


@dataclass(frozen=True)
class RuleReplay:
    rule: str  # decide()'s name for it
    setting: str  # its thresholds, as the decision file gives them
    stop: StopPoint | None  # None: it never fired
    note: str = ""  # why it could not be judged somewhere (e.g. no regret bound)
    # regret_bound: the bound at each checkpoint it was judged at (None: not computed), to set
    # the threshold by
    at_checkpoints: dict[int, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class GateReplay:
    """The whole decision at one checkpoint, as the sweep's gate takes it."""

    checkpoint: int
    after_trial: int
    action: str
    rule: str
    message: str


@dataclass(frozen=True)
class Replay:
    study_name: str
    direction: str
    metric: str
    n_trials: int  # the study's budget
    ended: int  # trials replayed (those that ended)
    unfinished: int  # running or waiting trials, left out
    best: float | None  # the final best
    best_trial: int | None
    decision: dict[str, Any]  # the rules replayed
    rules: list[RuleReplay]
    gates: list[GateReplay]  # each checkpoint crossed, up to the first that ends the sweep
    gates_stop: StopPoint | None  # where the gates would have ended it; None: they would not
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replay_decision(
    trials: Sequence[FrozenTrial],
    spec: SweepSpec,
    decision: DecisionSpec,
    *,
    n_trials: int | None = None,
) -> Replay:
    """Replay ``decision`` over the ended ``trials`` of a study run with ``spec`` (its budget is
    ``n_trials``, default the spec's)."""
    began = time.perf_counter()
    ended = sorted(
        (t for t in trials if t.state.is_finished() and t.datetime_complete is not None),
        key=lambda t: (ATTR_CARRIED_FROM not in t.user_attrs, t.datetime_complete, t.number),
    )
    carried = sum(ATTR_CARRIED_FROM in t.user_attrs for t in ended)
    finished = _finished_counts(ended)
    full = build_trials_table(
        ended, spec.model_copy(update={"decision": decision}), n_trials=n_trials
    )
    costs = _Costs(ended)
    rules = _rules(decision)
    specs = {name: spec.model_copy(update={"decision": only}) for name, _, only in rules}
    fired: dict[str, StopPoint] = {}
    notes: dict[str, str] = {}
    bounds: dict[int, float | None] = {}
    gates: list[GateReplay] = []
    gates_stop: StopPoint | None = None
    crossings = _checkpoint_crossings(finished, decision.checkpoints)
    for k in range(carried + 1, len(ended) + 1):
        crossed = crossings.get(k)
        if len(fired) == len(rules) and (gates_stop is not None or crossed is None):
            continue
        head = full.head(k)
        for name, _, _ in rules:
            if name in fired or (name == "regret_bound" and crossed is None):
                continue
            verdict = decide(replace(head, spec=specs[name]))
            if name == "regret_bound" and crossed is not None:
                bounds[crossed] = verdict.figures.get("regret_bound")
                if verdict.figures.get("regret_bound_note"):
                    note = verdict.figures["regret_bound_note"]
                    notes.setdefault(name, f"at checkpoint {crossed}: {note}")
            if verdict.rule == name and verdict.action in ("stop", "done"):
                fired[name] = _stop_point(verdict, head, finished[k - 1], full, costs)
        if crossed is not None and gates_stop is None:
            verdict = decide(head)
            number = ended[k - 1].number
            gates.append(GateReplay(crossed, number, verdict.action, verdict.rule, verdict.message))
            if verdict.action in ("stop", "done"):
                gates_stop = _stop_point(verdict, head, finished[k - 1], full, costs)
    s = full.summary
    unfinished = sum(1 for t in trials if not t.state.is_finished())
    return Replay(
        study_name=spec.study_name,
        direction=spec.direction,
        metric=spec.metric,
        n_trials=s.n_trials,
        ended=len(ended),
        unfinished=unfinished,
        best=s.best_value,
        best_trial=s.best_trial,
        decision=decision.model_dump(mode="json"),
        rules=[
            RuleReplay(
                name,
                setting,
                fired.get(name),
                notes.get(name, ""),
                bounds if name == "regret_bound" else {},
            )
            for name, setting, _ in rules
        ],
        gates=gates,
        gates_stop=gates_stop,
        seconds=round(time.perf_counter() - began, 3),
        notes=_notes(decision, unfinished),
    )


def _rules(d: DecisionSpec) -> list[tuple[str, str, DecisionSpec]]:
    """Each rule the decision sets, with its setting and a decision with only that rule on."""

    def only(**on: Any) -> DecisionSpec:
        return d.model_copy(update={**_ALL_OFF, **on})

    at = f" at or past checkpoint {d.checkpoints[0]}" if d.checkpoints else " (no checkpoints)"
    rules = [
        (
            "failure_rate",
            f"max_failure_rate {d.max_failure_rate:g} once {d.min_trials_for_failure_rate} "
            "trials ended",
            only(max_failure_rate=d.max_failure_rate),
        )
    ]
    if d.max_lost_rate is not None:
        rules.append(
            (
                "lost_rate",
                f"max_lost_rate {d.max_lost_rate:g} once {d.min_trials_for_failure_rate} "
                "trials ended or were lost",
                only(max_lost_rate=d.max_lost_rate),
            )
        )
    if d.target is not None:
        rules.append(("target", f"target {d.target:g}", only(target=d.target)))
    if d.stop_if_best_worse_than is not None:
        rules.append(
            (
                "stop_if_best_worse_than",
                f"best worse than {d.stop_if_best_worse_than:g}{at}",
                only(stop_if_best_worse_than=d.stop_if_best_worse_than),
            )
        )
    if d.plateau_trials:
        rules.append(
            (
                "plateau",
                f"no new best in {d.plateau_trials} completed trials",
                only(plateau_trials=d.plateau_trials),
            )
        )
    if d.regret_bound is not None:
        rules.append(
            (
                "regret_bound",
                f"regret bound below {d.regret_bound:g} at a checkpoint",
                only(regret_bound=d.regret_bound),
            )
        )
    return rules


def _finished_counts(ended: list[FrozenTrial]) -> list[int]:
    """The study's own finished trials (completed or pruned, not carried in) after each end."""
    counts, finished = [], 0
    for t in ended:
        finished += t.state in _FINISHED and ATTR_CARRIED_FROM not in t.user_attrs
        counts.append(finished)
    return counts


def _checkpoint_crossings(finished: list[int], checkpoints: list[int]) -> dict[int, int]:
    """{trials ended: checkpoint} for the trial whose end makes the finished count reach each
    checkpoint (the count grows by at most one a trial, so each is crossed exactly once)."""
    crossings: dict[int, int] = {}
    pending = list(checkpoints)
    for k, count in enumerate(finished, start=1):
        if pending and count >= pending[0]:
            crossings[k] = pending.pop(0)
    return crossings


class _Costs:
    """Run time, GPU time and end time of the trials, in the order they ended."""

    def __init__(self, ended: list[FrozenTrial]) -> None:
        self.seconds = [t.duration.total_seconds() if t.duration else 0.0 for t in ended]
        self.gpus = [_gpus(t.user_attrs.get("worker")) for t in ended]
        self.recorded = any(g is not None for g in self.gpus)
        self.ends: list[datetime | None] = [t.datetime_complete for t in ended]

    def after(self, k: int) -> tuple[float, float | None, float | None]:
        hours = sum(self.seconds[k:]) / 3600
        gpu = (
            sum(s * (g or 0) for s, g in zip(self.seconds[k:], self.gpus[k:], strict=True)) / 3600
            if self.recorded
            else None
        )
        first, last = self.ends[k - 1], self.ends[-1]
        wall = (last - first).total_seconds() / 3600 if first and last else None
        return hours, gpu, wall


def _gpus(worker: Any) -> int | None:
    """GPUs of the worker a trial ran on (its ``worker`` attribute); None: not recorded."""
    gpus = worker.get("gpus") if isinstance(worker, dict) else None
    if isinstance(gpus, list):
        return len(gpus)
    return gpus if isinstance(gpus, int) and not isinstance(gpus, bool) else None


def _stop_point(
    verdict: Decision, head: TrialsTable, finished: int, full: TrialsTable, costs: _Costs
) -> StopPoint:
    s, k = head.summary, len(head.frame)
    final = full.summary.best_value
    missed = None
    if final is not None and s.best_value is not None:
        gap = final - s.best_value
        missed = gap if full.spec.direction == "maximize" else -gap
    hours, gpu, wall = costs.after(k)
    return StopPoint(
        action=verdict.action,
        rule=verdict.rule,
        message=verdict.message,
        after_trial=int(head.frame["number"].iloc[-1]),
        ended=k,
        finished=finished,
        checkpoint=verdict.checkpoint,
        best=s.best_value,
        best_missed=missed,
        trials_saved=full.summary.total - k,
        hours_saved=round(hours, 4),
        gpu_hours_saved=None if gpu is None else round(gpu, 4),
        wall_hours_saved=None if wall is None else round(wall, 4),
    )


def _notes(d: DecisionSpec, unfinished: int) -> list[str]:
    notes = []
    if unfinished:
        notes.append(f"{unfinished} trial(s) still running or waiting are left out")
    if d.stop_if_best_worse_than is not None and not d.checkpoints:
        notes.append("stop_if_best_worse_than is judged at checkpoints, and there are none")
    return notes


# -- drawing -------------------------------------------------------------------------------------


def render_replay(r: Replay) -> str:
    """The replay as lines for a terminal."""
    lines = [
        f"replay of {r.study_name}: {r.ended} trials in the order they ended (budget "
        f"{r.n_trials}); final best {_fmt(r.best)}"
        + (f" (trial {r.best_trial})" if r.best_trial is not None else ""),
        f"rules: {_rules_line(r.decision)}",
        "",
    ]
    for rule in r.rules:
        head = f"{rule.rule} ({rule.setting}): "
        lines.append(head + (_stop_line(rule.stop, r) if rule.stop else "never fired"))
        if rule.at_checkpoints:
            shown = ", ".join(f"{c}: {_fmt(b)}" for c, b in rule.at_checkpoints.items())
            lines.append(f"  the bound at each checkpoint: {shown}")
        if rule.note:
            lines.append(f"  note: {rule.note}")
    if r.gates:
        lines += ["", "at the checkpoints, all rules together (what the sweep's gates decide):"]
        for g in r.gates:
            lines.append(
                f"  checkpoint {g.checkpoint} (after trial {g.after_trial}): {g.action} "
                f"({g.rule}): {g.message}"
            )
        if r.gates_stop is not None:
            lines.append(f"  -> {_stop_line(r.gates_stop, r)}")
        else:
            lines.append("  -> the gates would have let the sweep run to its end")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def _stop_line(p: StopPoint, r: Replay) -> str:
    missed = (
        "nothing missed"
        if p.best_missed is not None and p.best_missed <= 0
        else f"missed {_fmt(p.best_missed)}"
    )
    saved = [f"{p.trials_saved} trial(s)", f"{_hours(p.hours_saved)} of trial time"]
    if p.gpu_hours_saved is not None:
        saved.append(f"{p.gpu_hours_saved:.3g} GPU-hours")
    if p.wall_hours_saved is not None:
        saved.append(f"{_hours(p.wall_hours_saved)} wall time")
    return (
        f"{p.action} after trial {p.after_trial} ({p.ended} of {r.ended} ended, {p.finished} "
        f"finished): best {_fmt(p.best)} then vs {_fmt(r.best)} final ({missed}); saves "
        + ", ".join(saved)
    )


def _rules_line(decision: dict[str, Any]) -> str:
    shown = {k: v for k, v in decision.items() if v is not None}
    return json.dumps(shown, separators=(", ", ": "))


def _hours(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.3g} h"
    return f"{hours * 60:.3g} min" if hours * 60 >= 1 else f"{hours * 3600:.3g} s"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

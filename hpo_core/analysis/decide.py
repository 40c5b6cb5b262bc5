"""The mid-sweep decision (seed 003): continue, stop or done, with the rule that fired.

Rules, in order, from the spec's ``decision:`` section (``best`` is the best completed value so far;
"worse"/"better" follow the study's direction):

1. ``failure_rate``: failed / ended trials above ``max_failure_rate``, once at least
   ``min_trials_for_failure_rate`` trials ended: stop. Trials lost to the infrastructure (a dead,
   preempted or cut-off worker: ``lost_cause``) are neither failed nor ended here.
2. ``lost_rate``: lost / (ended + lost) above ``max_lost_rate``, once at least
   ``min_trials_for_failure_rate`` trials ended or were lost: stop (the cluster keeps killing
   workers)
3. ``target``: best reached ``target``: done
4. ``budget``: finished trials reached ``n_trials``: done (saying so when a ``target`` was set
   and not reached)
5. ``stop_if_best_worse_than``: at or past a checkpoint, best still worse than it: stop
6. ``plateau``: no new best in the last ``plateau_trials`` completed trials: done (the search
   has converged: its champions are still trained; a poor plateau is caught by rule 5 first)
7. ``regret_bound``: at or past a checkpoint, Optuna's regret bound (:mod:`.regret`) below
   ``regret_bound``: done (more trials are unlikely to find much better)
8. ``on_track``: best better than ``on_track_if_best_better_than``: continue
9. otherwise: continue

The decision depends only on the trials in the storage, so the same study gives the same answer
every time (the Airflow gate branches on it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hpo_core.analysis.trials import TrialsTable

__all__ = ["ATTR_DECISION", "ATTR_DECISIONS", "Decision", "decide"]

# The study's current decision (what optuna-dashboard shows): a checkpoint's, or at the end of the
# sweep the rules over every trial (the report's), marked ``final: true``.
ATTR_DECISION = "sweepflow.decision"
# The checkpoints' decisions, one entry per checkpoint (action, rule, best then), oldest first.
ATTR_DECISIONS = "sweepflow.decisions"


@dataclass(frozen=True)
class Decision:
    action: Literal["continue", "stop", "done"]
    rule: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
    checkpoint: int | None = None  # the last checkpoint reached, if any
    decided_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(table: TrialsTable) -> Decision:
    spec, s = table.spec, table.summary
    rules = spec.decision
    finished = s.complete + s.pruned - s.carried  # a warm start's trials are not in the budget
    ended = s.ended
    maximize = spec.direction == "maximize"
    best = s.best_value
    reached = [c for c in rules.checkpoints if finished >= c]
    checkpoint = reached[-1] if reached else None
    since_best = _since_best(table)
    figures: dict[str, Any] = {
        "finished": finished,
        "n_trials": s.n_trials,
        "complete": s.complete,
        "pruned": s.pruned,
        "failed": s.failed,
        "failure_rate": round(s.failure_rate, 4),
        "lost": s.lost,
        "lost_rate": round(s.lost_rate, 4),
        "best": best,
        "best_trial": s.best_trial,
        "completed_since_best": since_best,
    }
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def better(a: float, b: float) -> bool:
        return a > b if maximize else a < b

    def made(action: Literal["continue", "stop", "done"], rule: str, message: str) -> Decision:
        return Decision(action, rule, message, figures, checkpoint, now)

    if ended >= rules.min_trials_for_failure_rate and s.failure_rate > rules.max_failure_rate:
        return made(
            "stop",
            "failure_rate",
            f"{s.failed} of {ended} trials failed ({s.failure_rate:.0%}), above the limit "
            f"of {rules.max_failure_rate:.0%}",
        )
    limit = rules.max_lost_rate
    if (
        limit is not None
        and ended + s.lost >= rules.min_trials_for_failure_rate
        and s.lost_rate > limit
    ):
        causes = ", ".join(f"{kind} {n}" for kind, n in s.lost_causes.items())
        return made(
            "stop",
            "lost_rate",
            f"{s.lost} of {ended + s.lost} trials were lost to the infrastructure "
            f"({s.lost_rate:.0%}; {causes}), above the limit of {limit:.0%}: the cluster keeps "
            "killing workers (preemptions, evictions, dead nodes or connections); fix its "
            "capacity or raise decision.max_lost_rate",
        )
    if rules.target is not None and best is not None and not better(rules.target, best):
        return made("done", "target", f"best {best:.4g} reached the target {rules.target:.4g}")
    if finished >= s.n_trials:
        short = ""
        if rules.target is not None:  # not reached, or the target rule above would have fired
            short = f"; target {rules.target:.4g} not reached"
            figures["target_reached"] = False
        return made(
            "done", "budget", f"all {s.n_trials} trials finished; best {_fmt(best)}{short}"
        )
    threshold = rules.stop_if_best_worse_than
    if (
        checkpoint is not None
        and threshold is not None
        and (best is None or better(threshold, best))
    ):
        return made(
            "stop",
            "stop_if_best_worse_than",
            f"at checkpoint {checkpoint} the best is {_fmt(best)}, worse than {threshold:.4g}",
        )
    if rules.plateau_trials and since_best is not None and since_best >= rules.plateau_trials:
        return made(
            "done",
            "plateau",
            f"no new best in the last {since_best} completed trials (limit "
            f"{rules.plateau_trials}); best {_fmt(best)}",
        )
    if rules.regret_bound is not None and checkpoint is not None:
        from hpo_core.analysis.regret import regret_bound

        bound = regret_bound(table.trials, spec.direction)
        figures["regret_bound"] = bound.value
        if bound.value is None:
            figures["regret_bound_note"] = bound.note
        elif bound.value < rules.regret_bound:
            return made(
                "done",
                "regret_bound",
                f"at checkpoint {checkpoint} the regret bound is {bound.value:.3g}, below "
                f"{rules.regret_bound:.3g}: by the model, no configuration in the space beats "
                f"the best {_fmt(best)} by more than that (a Gaussian process on the best "
                f"{bound.model_trials} of {bound.complete} completed trials)",
            )
    on_track = rules.on_track_if_best_better_than
    if on_track is not None and best is not None and better(best, on_track):
        return made("continue", "on_track", f"best {best:.4g} is better than {on_track:.4g}")
    where = f" at checkpoint {checkpoint}" if checkpoint is not None else ""
    return made(
        "continue",
        "default",
        f"{finished}/{s.n_trials} finished{where}; best {_fmt(best)}; no stop rule fired",
    )


def _since_best(table: TrialsTable) -> int | None:
    done = table.complete
    if done.empty:
        return None
    best_number = int(done.iloc[0]["number"])
    return int((done["number"] > best_number).sum())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

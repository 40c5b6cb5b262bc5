"""Lost trials: ended by the infrastructure, not by themselves.

A trial whose worker died, was preempted or evicted, stopped sending heartbeats, or whose
reservation was orphaned by a lost connection says nothing about its parameters. Optuna has one
end state for both kinds, FAIL; a lost trial is a FAIL trial with the user attribute
``lost_cause`` (and ``fail_reason``, the same text). It is re-queued as a WAITING copy, Optuna's
retry convention (system attributes ``failed_trial`` and ``retry_history`` as
``RetryHeartbeatStaleTrialCallback`` writes them), carrying its parameters and the intermediate
values up to its last checkpoint, so a resumed trial reports no step twice.

The failure rate that stops a sweep (``decision.max_failure_rate``, the worker's
``max_failed_trials``) counts only FAIL trials without ``lost_cause``; lost ones are counted apart
(``decision.max_lost_rate``): a wave of spot preemptions does not stop a healthy sweep, and a
cluster that keeps killing workers is named as such.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo_core.storage.backends import ATTR_LOST_TRIALS, study_lock_of
from hpo_core.storage.optuna_internals import study_storage
from hpo_core.storage.resilient import fail_running_trial

__all__ = [
    "ATTR_CHECKPOINT",
    "ATTR_FAIL_REASON",
    "ATTR_LOST_CAUSE",
    "ATTR_WORKER",
    "lose_trial",
]

_log = logging.getLogger(__name__)

ATTR_LOST_CAUSE = "lost_cause"
ATTR_FAIL_REASON = "fail_reason"
# One user attribute per trial, {id, host, pid, pid_start, gpus}: one write instead of five.
ATTR_WORKER = "worker"
# {"epoch", "artifact_id", "origin"}: the trial's last saved checkpoint (hpo_core.objectives)
ATTR_CHECKPOINT = "sweepflow.checkpoint"

# How and where the lost trial ended is not the copy's. Nor is its worker: a copy still tagged
# with a dead worker's pid could be taken for that worker's trial by a peer's dead-worker check
# in the moment between its reservation and its new tag.
_NOT_COPIED = frozenset({ATTR_FAIL_REASON, ATTR_LOST_CAUSE, "fail_traceback", ATTR_WORKER})


def lose_trial(study: optuna.Study, trial_id: int, cause: str, *, max_retry: int | None) -> bool:
    """Mark a RUNNING trial lost: FAIL with ``lost_cause`` = ``fail_reason`` = ``cause``;
    re-queue a copy (WAITING, same params and distributions, user attrs without fail_reason and
    lost_cause, system attrs with failed_trial and retry_history as Optuna writes them) unless
    the retry history is longer than ``max_retry``. The copy inherits the intermediate values
    with step <= the trial's ``sweepflow.checkpoint["epoch"]`` (none without a checkpoint), so
    a resumed trial never reports a step twice. Returns False if the trial had already finished
    (nothing done).

    Both happen under the study's lock, the one reservations take: a reservation between them
    would see the freed slot and no copy, start a new trial in it, and leave the copy waiting
    for ever. The caller must not hold that lock.
    """
    storage = study_storage(study)
    attrs = {ATTR_LOST_CAUSE: cause, ATTR_FAIL_REASON: cause}
    with study_lock_of(storage, study.study_name):
        if not fail_running_trial(storage, trial_id, attrs, count_key=ATTR_LOST_TRIALS):
            return False
        lost = storage.get_trial(trial_id)
        copy = _retry_copy(lost, max_retry)
        if copy is not None:
            study.add_trial(copy)
    if copy is None:
        _log.warning(
            "trial %d lost (%s); not re-queued: retried %d time(s) already (limit %s)",
            lost.number,
            cause,
            len(lost.system_attrs.get("retry_history", [])),
            max_retry,
        )
        return True
    _log.warning(
        "trial %d lost (%s); re-queued with its parameters%s",
        lost.number,
        cause,
        f" and {len(copy.intermediate_values)} reported step(s)"
        if copy.intermediate_values
        else "",
    )
    return True


def _retry_copy(trial: FrozenTrial, max_retry: int | None) -> FrozenTrial | None:
    system_attrs: dict[str, Any] = {
        "failed_trial": trial.number,
        "retry_history": [],
        **trial.system_attrs,
    }
    system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
    if max_retry is not None and max_retry < len(system_attrs["retry_history"]):
        return None
    epoch = _checkpoint_epoch(trial)
    return optuna.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k not in _NOT_COPIED},
        system_attrs=system_attrs,
        intermediate_values=(
            {step: v for step, v in trial.intermediate_values.items() if step <= epoch}
            if epoch is not None
            else None
        ),
    )


def _checkpoint_epoch(trial: FrozenTrial) -> int | None:
    checkpoint = trial.user_attrs.get(ATTR_CHECKPOINT)
    epoch = checkpoint.get("epoch") if isinstance(checkpoint, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None

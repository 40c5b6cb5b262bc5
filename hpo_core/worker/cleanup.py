"""``hpo cleanup``: mark trials left RUNNING by workers that are gone as lost, and re-queue them
(seed 003's "clean up incomplete trials", which the user's inspect tool did by hand).

A RUNNING trial is stale when
- the storage records heartbeats (PostgreSQL) and its last one is older than the grace period,
  or it started more than the grace period ago and never sent one (an orphan of a lost connection);
- its worker ran on this host and that process is gone (the journal has no heartbeats);
- or, with ``older_than``, it started more than that many seconds ago (a worker on another host,
  or a storage without heartbeats: the caller knows how long a trial can take), unless its owner
  is known to be alive: a live process on this host with the same start time, or a heartbeat
  within the grace period. A long trial of a live worker is not stale, however old.

Live trials are never touched, so running it during a sweep is safe; running it twice changes
nothing the second time. A stale trial is lost, not failed (``hpo_core.worker.lost``): its cause
is "cleaned up by hpo cleanup: <why it was stale>", it does not count in the failure rate, and its
copy waits for the next worker, up to ``worker.stale_trial_retries`` times. Workers already lose
the trials of dead peers as they go; this is for sweeps whose workers are all gone.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hpo_core.storage.optuna_internals import running_trial_ages, study_id_of, trial_id_of
from hpo_core.storage.resilient import retry_storage
from hpo_core.worker.lost import ATTR_WORKER, lose_trial
from hpo_core.worker.worker import _alive

if TYPE_CHECKING:
    from hpo_core.study import SweepStudy

__all__ = ["CleanedTrial", "cleanup_stale_trials"]


@dataclass(frozen=True)
class CleanedTrial:
    number: int
    reason: str  # why it was judged stale
    started: datetime | None


def cleanup_stale_trials(
    sweep: SweepStudy, *, older_than: float | None = None, dry_run: bool = False
) -> list[CleanedTrial]:
    """Lose (and re-queue) the stale RUNNING trials of ``sweep``; returns what was (or, dry,
    would be) changed."""
    storage = sweep.handle.storage
    study_id = study_id_of(sweep.study)
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    ages: dict[int, tuple[float | None, float | None]] = {}
    grace = None
    if isinstance(storage, RDBStorage):
        # The heartbeat settings the workers ran with (the study's spec), however this storage
        # was opened: `hpo cleanup` opens it without heartbeats of its own.
        worker = sweep.spec.worker
        grace = worker.grace_period or 2 * worker.heartbeat_interval
        ages = retry_storage(lambda: running_trial_ages(storage, study_id), "cleanup")
    host = socket.gethostname()
    now = datetime.now()
    cleaned = []
    for trial in running:
        beat, started = ages.get(trial_id_of(trial), (None, None))
        owner = trial.user_attrs.get(ATTR_WORKER) or {}
        reason = None
        if owner.get("host") == host and owner.get("pid") is not None:
            if _alive(int(owner["pid"]), owner.get("pid_start")):
                continue  # its process runs on this host: alive, however long the trial takes
            reason = f"its worker process {owner['pid']} on {host} is gone"
        elif grace is not None and beat is not None and beat <= grace:
            continue  # a fresh heartbeat: its worker is alive, wherever it runs
        elif grace is not None and (beat is not None or (started is not None and started > grace)):
            reason = "no heartbeat within the grace period"
        if reason is None and older_than is not None and trial.datetime_start is not None:
            age = (now - trial.datetime_start).total_seconds()
            if age > older_than:
                reason = f"running for {age:.0f}s, more than --older-than {older_than:g}s"
        if reason is None:
            continue
        if not dry_run and not lose_trial(
            sweep.study,
            trial_id_of(trial),
            f"cleaned up by hpo cleanup: {reason}",
            max_retry=sweep.spec.worker.stale_trial_retries,
        ):
            continue  # it finished meanwhile: not stale after all
        cleaned.append(CleanedTrial(trial.number, reason, trial.datetime_start))
    return cleaned

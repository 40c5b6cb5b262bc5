"""Riding out a database restart: storage calls retried with backoff while the server is away.

A nightly sweep outlives PostgreSQL restarts (upgrades, failovers, a node drained). A call that
fails because the connection is gone (SQLAlchemy's ``OperationalError``/``InterfaceError``, a
disconnect, or Optuna's ``StorageInternalError`` caused by one) is retried: a warning line says
what failed and when the next try is, waits grow 1, 2, 4, ... up to 30 s, for at most
``HPO_STORAGE_RETRY_SECONDS`` (default 300 s) in all; then the error propagates and the worker
stops with it. ``pool_pre_ping`` makes the next call get a fresh connection. Errors that are not
about the connection (constraint violations, a finished trial) are never retried.

Retrying a write whose commit did reach the server before the connection dropped repeats it. The
writes a worker repeats (state, values, attributes) are idempotent or refused as already finished;
a repeated ``create_new_trial``, or a worker's reservation that created its trial and then lost the
connection before tagging it, leaves a RUNNING trial that no worker runs and that never sends a
heartbeat. Optuna's stale check skips trials without a heartbeat, so such an orphan held its slot
for ever and the last workers waited on it (found by CI: a sweep hung after a restart). Here a
RUNNING trial with no heartbeat that started more than the grace period ago is stale too: it is
lost and re-queued like the trial of a dead worker (``hpo_core.worker.lost``), each with its
cause. A live worker records its first heartbeat as its trial starts, so this never takes a live
trial (the age is read on the checking worker's clock against the creating worker's, so hosts'
clocks must agree to well within the grace period, as NTP keeps them).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from hpo_core.storage.optuna_internals import (
    STALE_TRIAL_HOOK,
    StaleTrialHookStorage,
    fail_running_trial_sql,
    running_trial_ages,
    unwrap_storage,
)

__all__ = [
    "ResilientRDBStorage",
    "fail_running_trial",
    "is_disconnect",
    "retry_storage",
    "stale_trials",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")

# RDBStorage's public API (BaseStorage and BaseHeartbeat): every call a study or worker makes
_METHODS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "record_heartbeat",
    STALE_TRIAL_HOOK,
)


def _budget() -> float:
    try:
        return max(0.0, float(os.environ.get("HPO_STORAGE_RETRY_SECONDS", "300")))
    except ValueError:
        return 300.0


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the database connection is gone (worth a retry)."""
    import sqlalchemy.exc
    from optuna.exceptions import OptunaError, StorageInternalError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if type(seen).__name__ in ("OperationalError", "InterfaceError"):  # psycopg2's own
            return True
        # The server answered (a constraint, a duplicate study, a finished trial): a disconnect
        # further down the chain is one SQLAlchemy recovered from while asking (a stale pooled
        # connection replaced inside its except block). Retrying such an answer repeats it until
        # the budget is spent: a worker restarted by a database restart did so on
        # DuplicatedStudyError, which Optuna's create_study(load_if_exists) would have caught.
        if isinstance(seen, sqlalchemy.exc.IntegrityError) or (
            isinstance(seen, OptunaError) and not isinstance(seen, StorageInternalError)
        ):
            return False
        seen = seen.__cause__ or seen.__context__
        if seen is exc:
            break
    return False


def retry_storage(fn: Callable[[], T], what: str, *, budget: float | None = None) -> T:
    """``fn()``, retried with backoff while the storage connection is down."""
    # A loop, not tenacity: every storage call of a worker passes here (about 15 a trial), and
    # a tenacity Retrying cost 210-240 us a call against this loop's 10-16 us (side by side on
    # the loaded 2-core test machine), while sweepflow's whole overhead over plain Optuna on
    # PostgreSQL is 1.7 ms a trial (docs/benchmarks.md). The loop is as short as the tenacity
    # version was; tests/storage/test_resilient.py pins its waits, budget and lines.
    deadline = time.monotonic() + (_budget() if budget is None else budget)
    delay, attempt = 1.0, 1
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_disconnect(exc) or time.monotonic() + delay > deadline:
                raise
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            _log.warning(
                "storage unreachable during %s (%s: %s); retry %d in %.0fs",
                what,
                type(exc).__name__,
                first,
                attempt,
                delay,
            )
            time.sleep(delay)
            delay, attempt = min(delay * 2, 30.0), attempt + 1
            continue
        if attempt > 1:
            _log.warning("storage reachable again: %s succeeded after %d tries", what, attempt)
        return result


def _retrying(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return retry_storage(lambda: method(self, *args, **kwargs), name)

    return call


def stale_trials(storage: RDBStorage, study_id: int, grace: float) -> dict[int, str]:
    """RUNNING trials of ``study_id`` whose last heartbeat is older than ``grace`` seconds, or
    that never sent one and started more than ``grace`` seconds ago (see the module doc):
    trial id -> why (the trial's ``lost_cause``)."""
    stale = {}
    for trial_id, (beat, started) in running_trial_ages(storage, study_id).items():
        if beat is not None and beat > grace:
            stale[trial_id] = (
                f"heartbeat: none for {beat:.0f}s (grace period {grace:g}s); its worker died, "
                "was evicted or lost its connection"
            )
        elif beat is None and started is not None and started > grace:
            stale[trial_id] = (
                f"orphan: never sent a heartbeat in the {started:.0f}s since it started (grace "
                f"period {grace:g}s); its reservation lost the connection"
            )
    return stale


def fail_running_trial(
    storage: BaseStorage,
    trial_id: int,
    user_attrs: dict[str, Any],
    *,
    count_key: str | None = None,
) -> bool:
    """Set ``user_attrs`` on a RUNNING trial and mark it FAIL; False (and nothing changed) if
    it had finished already. On an RDB, ``count_key`` names a study user attribute counting the
    trials failed this way, raised in the same transaction (the reservation reads it rather than
    joining the trials with their attributes on every trial); the journal's reservation counts
    from the trials, which it reads anyway.

    On an RDB both happen in one transaction: the row update waits for, and then loses to, an
    owner telling its result at the same moment (or wins, and the owner's tell is refused), so a
    trial never ends up FAIL without these attributes, nor finished by its owner with them. A
    retry after a lost connection whose commit had landed finds its own attributes and counts
    as done. Elsewhere (the journal) they are two writes; there the only caller that could race
    an owner is a check that found the owner's process gone.
    """
    backend = unwrap_storage(storage)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(backend, RDBStorage):
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            for key, value in user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
            return bool(storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
        except UpdateFinishedTrialError:
            return False
    tries = 0

    def once() -> bool:
        nonlocal tries
        tries += 1
        return fail_running_trial_sql(backend, trial_id, user_attrs, count_key, retried=tries > 1)

    return retry_storage(once, f"marking trial id {trial_id} failed")


class ResilientRDBStorage(StaleTrialHookStorage):
    """Optuna's RDBStorage whose every call rides out a lost connection, and whose stale check
    also finds RUNNING trials that never sent a heartbeat (see the module doc)."""

    def stale_trials(self, study_id: int) -> dict[int, str]:
        """:func:`stale_trials` with this storage's grace period."""
        assert self.heartbeat_interval is not None
        return stale_trials(self, study_id, self.grace_period or 2 * self.heartbeat_interval)


for _name in _METHODS:
    if hasattr(RDBStorage, _name):  # this class's own override, if any, is the one wrapped
        setattr(ResilientRDBStorage, _name, _retrying(_name, getattr(ResilientRDBStorage, _name)))

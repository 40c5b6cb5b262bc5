"""Riding out a database restart: storage calls retried with backoff while the server is away.

A nightly sweep outlives PostgreSQL restarts (upgrades, failovers, a node drained). A call that
fails because the connection is gone (SQLAlchemy's ``OperationalError``/``InterfaceError``, a
disconnect, or Optuna's ``StorageInternalError`` caused by one) is retried: a warning line says
what failed and when the next try is, waits grow 1, 2, 4, ... up to 30 s, for at most
``HPO_STORAGE_RETRY_SECONDS`` (default 300 s) in all; then the error propagates and the worker
stops with it. ``pool_pre_ping`` makes the next call get a fresh connection. Errors that are not
about the connection (constraint violations, a finished trial) are never retried.

Retrying a write whose commit did reach the server before the connection dropped could repeat it;
a restart aborts transactions in flight, so this does not happen on a restart, and the writes a
worker repeats (state, values, attributes) are idempotent or refused as already finished.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.storages import RDBStorage

__all__ = ["ResilientRDBStorage", "is_disconnect", "retry_storage"]

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
    "_get_stale_trial_ids",
)


def _budget() -> float:
    try:
        return max(0.0, float(os.environ.get("HPO_STORAGE_RETRY_SECONDS", "300")))
    except ValueError:
        return 300.0


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the database connection is gone (worth a retry)."""
    import sqlalchemy.exc

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if type(seen).__name__ in ("OperationalError", "InterfaceError"):  # psycopg2's own
            return True
        seen = seen.__cause__ or seen.__context__
        if seen is exc:
            break
    return False


def retry_storage(fn: Callable[[], T], what: str, *, budget: float | None = None) -> T:
    """``fn()``, retried with backoff while the storage connection is down."""
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


class ResilientRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose every call rides out a lost connection (see the module doc)."""


for _name in _METHODS:
    if hasattr(RDBStorage, _name):
        setattr(ResilientRDBStorage, _name, _retrying(_name, getattr(RDBStorage, _name)))

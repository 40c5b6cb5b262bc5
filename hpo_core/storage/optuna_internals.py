"""Every Optuna internal sweepflow relies on, in one module: the rest of hpo_core uses Optuna's
public API and this. ``tests/storage/test_optuna_contract.py`` pins each name below (that it
exists, with the signature called here, and behaves as assumed on a real storage), so an Optuna
upgrade that moves one fails there, naming it, before anything else breaks quietly. The upper
bound on optuna in pyproject.toml stays until those tests pass on the next version.

Private modules and functions:

- ``optuna.storages._rdb.models``: ``TrialModel`` (``trial_id``, ``study_id``, ``state``,
  ``_datetime_start_utc``) and ``TrialHeartbeatModel`` (``trial_id``, ``heartbeat``).
  :func:`running_trial_ages` reads every RUNNING trial's heartbeat age and start in one query;
  Optuna only answers "which trials are stale", and only for trials that sent a heartbeat.
- ``optuna.storages._heartbeat.is_heartbeat_enabled``: whether a storage records heartbeats
  (the worker beats itself, outside ``Study.optimize``).
- ``optuna.samplers._lazy_random_state.LazyRandomState``: the random state TPE and Random
  samplers hold; Optuna has no public per-trial seeding, and a seeded sweep must draw the same
  parameters for trial N whichever worker runs it (:func:`reseed_sampler`).

Raw SQL on Optuna's tables (:data:`TABLES` lists every table and column it touches; the tests
check them against the models' metadata, unique keys included):

- the reservation's snapshot (trial counts by state and chosen study attributes, one query under
  the study lock, once per trial: :func:`snapshot_rows`), and tagging the reserved trial on the
  same connection (:func:`upsert_trial_user_attr`);
- failing a RUNNING trial with its attributes (and a study's lost-trial count) in one
  transaction, so an owner telling its result at the same moment either wins or loses whole
  (:func:`fail_running_trial_sql`). Optuna's API would take three transactions.

Overridden private methods:

- ``RDBStorage._get_stale_trial_ids(study_id) -> list[int]``, the stale check Optuna's
  ``fail_stale_trials`` calls (through its cache wrapper): :class:`StaleTrialHookStorage` routes
  it to a public ``stale_trials`` (``hpo_core.storage.resilient`` says why orphans count too).
- ``HyperbandPruner._get_bracket_id(study, trial)`` and ``_create_bracket_study(study,
  bracket_id)``: :class:`HyperbandBracketHooks` exposes them as ``bracket_id`` and
  ``bracket_study`` (``hpo_core.study.sampling.ResumableHyperbandPruner``).

Private attributes: ``Trial._trial_id`` and ``FrozenTrial._trial_id`` (the storage's key of a
trial; Optuna has no public one), ``Study._study_id``, ``Study._storage``,
``Study._thread_local.cached_all_trials`` (reset when a trial row is made outside
``Study.ask``, as ``ask`` resets it), ``_CachedStorage._backend`` and ``JournalStorage._backend``
(the storage a study's cache wraps), ``JournalFileBackend._file_path``; and ``Trial(study,
trial_id)``, the constructor ``Study.ask`` calls.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import optuna
from optuna.pruners import HyperbandPruner
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    import sqlalchemy

__all__ = [
    "PRIVATE_NAMES",
    "STALE_TRIAL_HOOK",
    "TABLES",
    "UNIQUE_KEYS",
    "HyperbandBracketHooks",
    "StaleTrialHookStorage",
    "fail_running_trial_sql",
    "has_heartbeat",
    "journal_file_path",
    "reseed_sampler",
    "running_trial_ages",
    "snapshot_rows",
    "study_id_of",
    "study_storage",
    "trial_for",
    "trial_id_of",
    "unwrap_storage",
    "upsert_trial_user_attr",
]

# Optuna's tables and the columns our SQL names; the unique keys are what ON CONFLICT targets.
TABLES: dict[str, tuple[str, ...]] = {
    "trials": ("trial_id", "study_id", "state", "datetime_start", "datetime_complete"),
    "trial_heartbeats": ("trial_id", "heartbeat"),
    "trial_user_attributes": ("trial_id", "key", "value_json"),
    "study_user_attributes": ("study_id", "key", "value_json"),
}
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "trial_user_attributes": ("trial_id", "key"),
    "study_user_attributes": ("study_id", "key"),
}
# The names this module reaches for, by owner: what the contract tests look up
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "optuna.storages._rdb.models": ("TrialModel", "TrialHeartbeatModel"),
    "optuna.storages._heartbeat": ("is_heartbeat_enabled",),
    "optuna.samplers._lazy_random_state": ("LazyRandomState",),
    "optuna.storages.RDBStorage": ("_get_stale_trial_ids",),
    "optuna.pruners.HyperbandPruner": ("_get_bracket_id", "_create_bracket_study"),
}
STALE_TRIAL_HOOK = "_get_stale_trial_ids"


# -- private attributes ---------------------------------------------------------------------------


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of ``trial`` (not its number)."""
    return int(trial._trial_id)


def study_id_of(study: optuna.Study) -> int:
    return int(study._study_id)


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes through (a cache around an RDB)."""
    return study._storage


def unwrap_storage(storage: BaseStorage) -> Any:
    """The storage under Optuna's cache (an RDBStorage), or a JournalStorage's file backend;
    ``storage`` itself when it wraps nothing."""
    return getattr(storage, "_backend", storage)


def journal_file_path(backend: Any) -> str:
    """The path a ``JournalFileBackend`` was opened with, as given."""
    return str(backend._file_path)


def trial_for(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """What ``Study.ask`` returns for a trial row made outside it: a fresh view of the study
    (its cached trial list dropped, as ``ask`` drops it) and the trial."""
    local = getattr(study, "_thread_local", None)
    if local is not None and hasattr(local, "cached_all_trials"):
        local.cached_all_trials = None
    return optuna.Trial(study, trial_id)


# -- private functions ----------------------------------------------------------------------------


def has_heartbeat(storage: BaseStorage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def reseed_sampler(sampler: object, seed: int, depth: int = 0) -> None:
    """Seed every random state a sampler holds (TPE keeps one of its own and one in its
    start-up RandomSampler), found by walking its attributes."""
    from optuna.samplers._lazy_random_state import LazyRandomState

    if depth > 2:
        return
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, BaseSampler):
            reseed_sampler(value, seed, depth + 1)


def running_trial_ages(
    storage: RDBStorage, study_id: int
) -> dict[int, tuple[float | None, float | None]]:
    """RUNNING trials of ``study_id``: trial id -> (seconds since its last heartbeat, or None if
    it never sent one; seconds since it started, or None).

    Heartbeats are compared with the server's clock, as Optuna does; a start time (naive UTC,
    set by the creating worker) with this process's clock.
    """
    import sqlalchemy
    from optuna.storages._rdb import models

    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    query = (
        sqlalchemy.select(trial.trial_id, trial._datetime_start_utc, beat.heartbeat)
        .outerjoin(beat, beat.trial_id == trial.trial_id)
        .where(trial.study_id == study_id, trial.state == TrialState.RUNNING)
    )
    with storage.engine.connect() as conn:
        server_now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = conn.execute(query).all()
    if not rows:
        return {}
    assert server_now is not None
    server_now = server_now.replace(tzinfo=None)  # as Optuna's own check does
    utc_now = datetime.now(UTC).replace(tzinfo=None)
    return {
        trial_id: (
            (server_now - heartbeat).total_seconds() if heartbeat is not None else None,
            (utc_now - started).total_seconds() if started is not None else None,
        )
        for trial_id, started, heartbeat in rows
    }


# -- raw SQL on Optuna's tables -------------------------------------------------------------------


@functools.cache
def _snapshot_sql() -> sqlalchemy.TextClause:
    import sqlalchemy

    return sqlalchemy.text(
        "SELECT 'state' AS kind, CAST(state AS TEXT) AS name, CAST(COUNT(*) AS TEXT) AS value "
        "FROM trials WHERE study_id = :s GROUP BY state "
        "UNION ALL "
        "SELECT 'attr', key, value_json FROM study_user_attributes "
        "WHERE study_id = :s AND key IN :keys"
    ).bindparams(sqlalchemy.bindparam("keys", expanding=True))


def snapshot_rows(
    conn: sqlalchemy.Connection, study_id: int, keys: list[str]
) -> tuple[dict[str, int], dict[str, Any]]:
    """One query: the study's trial counts by state name, and its user attributes ``keys``."""
    rows = conn.execute(_snapshot_sql(), {"s": study_id, "keys": keys}).all()
    counts = {name: int(value) for kind, name, value in rows if kind == "state"}
    attrs = {name: json.loads(value) for kind, name, value in rows if kind == "attr"}
    return counts, attrs


_UPSERT_TRIAL_ATTR = (
    "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
    "VALUES (:t, :k, :v) ON CONFLICT (trial_id, key) "
    "DO UPDATE SET value_json = excluded.value_json"
)


def upsert_trial_user_attr(conn: sqlalchemy.Connection, rows: list[tuple[int, str, Any]]) -> None:
    """Set trial user attributes (trial id, key, value) on ``conn``, overwriting."""
    import sqlalchemy

    conn.execute(
        sqlalchemy.text(_UPSERT_TRIAL_ATTR),
        [{"t": t, "k": k, "v": json.dumps(v)} for t, k, v in rows],
    )


def fail_running_trial_sql(
    storage: RDBStorage,
    trial_id: int,
    user_attrs: dict[str, Any],
    count_key: str | None,
    *,
    retried: bool,
) -> bool:
    """In one transaction: mark ``trial_id`` FAIL if it is RUNNING, set ``user_attrs`` on it and
    raise the study attribute ``count_key`` by one. False if it was not RUNNING, unless this is
    a retry (``retried``) and the trial carries exactly ``user_attrs``: then an earlier try's
    commit landed before its connection dropped."""
    import sqlalchemy

    with storage.engine.begin() as conn:
        study_id = conn.execute(
            sqlalchemy.text(
                "UPDATE trials SET state = 'FAIL', datetime_complete = :now "
                "WHERE trial_id = :t AND state = 'RUNNING' RETURNING study_id"
            ),
            # naive local time, as Optuna's own set_trial_state_values writes it
            {"t": trial_id, "now": datetime.now()},
        ).scalar()
        if study_id is not None:
            upsert_trial_user_attr(conn, [(trial_id, k, v) for k, v in user_attrs.items()])
            if count_key is not None:
                conn.execute(
                    sqlalchemy.text(
                        "INSERT INTO study_user_attributes (study_id, key, value_json) "
                        "VALUES (:s, :k, '1') ON CONFLICT (study_id, key) DO UPDATE SET "
                        "value_json = CAST(CAST(study_user_attributes.value_json AS INTEGER) + 1 "
                        "AS TEXT)"
                    ),
                    {"s": study_id, "k": count_key},
                )
            return True
        if not retried:
            return False
        stored: dict[str, str] = dict(
            conn.execute(
                sqlalchemy.text(
                    "SELECT key, value_json FROM trial_user_attributes "
                    "WHERE trial_id = :t AND key IN :keys"
                ).bindparams(sqlalchemy.bindparam("keys", expanding=True)),
                {"t": trial_id, "keys": list(user_attrs)},
            ).all()
        )
    return {k: json.loads(v) for k, v in stored.items()} == user_attrs


# -- overridden private methods -------------------------------------------------------------------


class StaleTrialHookStorage(RDBStorage):
    """RDBStorage whose stale check, the private hook Optuna's ``fail_stale_trials`` calls, is
    :meth:`stale_trials`."""

    def stale_trials(self, study_id: int) -> dict[int, str]:
        """RUNNING trials of ``study_id`` to fail: trial id -> why."""
        return dict.fromkeys(super()._get_stale_trial_ids(study_id), "heartbeat: stale")

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return list(self.stale_trials(study_id))


class HyperbandBracketHooks(HyperbandPruner):
    """Optuna's Hyperband with its two private bracket steps as hooks a subclass overrides."""

    def bracket_id(self, study: optuna.Study, trial: FrozenTrial) -> int:
        """The bracket ``trial`` is judged in (Optuna: a hash of study name and number)."""
        return super()._get_bracket_id(study, trial)

    def bracket_study(self, study: optuna.Study, bracket_id: int) -> optuna.Study:
        """The study view whose trials ``trial`` competes with in its bracket."""
        return super()._create_bracket_study(study, bracket_id)

    def _get_bracket_id(self, study: optuna.Study, trial: FrozenTrial) -> int:
        return self.bracket_id(study, trial)

    def _create_bracket_study(self, study: optuna.Study, bracket_id: int) -> optuna.Study:
        return self.bracket_study(study, bracket_id)

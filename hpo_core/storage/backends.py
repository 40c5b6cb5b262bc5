"""Opening Optuna storages, and the per-study lock that keeps the trial budget exact.

PostgreSQL is the shared, deployed storage (RDBStorage through psycopg2, connections checked
before use, heartbeats for dead workers). With no URL the embedded default is Optuna's
JournalStorage on a local file, which several processes on one machine share safely through the
file lock Optuna ships (a torn last record, left by a full disk or a killed process, is moved
aside when it is opened: ``hpo_core.storage.journal``). SQLite is accepted for single-process use.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import StorageError
from hpo_core.storage.urls import mask_url, storage_kind

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "ATTR_LOST_TRIALS",
    "ENV_STORAGE_POOL",
    "Snapshot",
    "StorageHandle",
    "file_lock",
    "open_storage",
    "study_lock_of",
]

_log = logging.getLogger(__name__)

# The trial attribute of a lost trial (hpo_core.worker.lost.ATTR_LOST_CAUSE; storage sits below it)
_LOST_CAUSE = "lost_cause"
# On an RDB, the study's count of lost trials, raised in the transaction that loses one: the
# reservation reads it with the budget instead of joining trials with their attributes (which
# cost a second pass over the study's trials, and a scan of every attribute when the planner
# misjudged, on every trial).
ATTR_LOST_TRIALS = "sweepflow.lost_trials"
# "none": no connection pool in the worker (for PgBouncer in session mode in front of the server)
ENV_STORAGE_POOL = "HPO_STORAGE_POOL"

# Postgres advisory locks take a bigint; namespace ours so they cannot collide with an app's.
_LOCK_NAMESPACE = "sweepflow-study-lock"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing, left in place) for the
    ``with`` block: processes on one machine sharing a file-backed store take turns. Not
    re-entrant: a second ``file_lock`` on the same path waits, even in the same thread."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    # filelock polls a non-blocking lock (flock on POSIX, as before); every journal worker
    # takes this lock once per trial, so it polls every 5 ms rather than its default 50 ms
    with FileLock(path, poll_interval=0.005):
        yield


@dataclass
class StorageHandle:
    """An opened storage with what sweepflow needs beside Optuna's API."""

    url: str
    storage: BaseStorage
    kind: str  # postgresql | sqlite | journal
    # (seconds waiting for the study lock, seconds holding it) of the latest reservations, and
    # the SQL statements sent: what one study's scale depends on (`hpo worker` reports them)
    lock_times: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=10_000))
    statements: int = 0

    def count_statements(self) -> None:
        """Count every statement this handle's engine sends (one cheap event hook)."""
        import sqlalchemy

        def counted(*_: Any) -> None:
            self.statements += 1

        engine = self.storage.engine  # type: ignore[attr-defined]
        sqlalchemy.event.listen(engine, "before_cursor_execute", counted)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def has_heartbeat(self) -> bool:
        from hpo_core.storage.optuna_internals import has_heartbeat

        return has_heartbeat(self.storage)

    @contextlib.contextmanager
    def study_lock(self, study_name: str) -> Iterator[None]:
        """An exclusive section per study, across processes (and machines, on PostgreSQL)."""
        if self.kind == "postgresql":
            import sqlalchemy

            key = _lock_key(study_name)
            engine = self.storage.engine  # type: ignore[attr-defined]
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        else:
            with file_lock(self._lock_file(study_name)):
                yield

    def _lock_file(self, study_name: str) -> Path:
        path = Path(_file_path(self.url))
        digest = hashlib.sha256(study_name.encode()).hexdigest()[:16]
        return path.with_name(f"{path.name}.{digest}.lock")

    @contextlib.contextmanager
    def reservation(
        self, study_name: str, study_id: int, attr_keys: tuple[str, ...]
    ) -> Iterator[Snapshot]:
        """Hold the study lock and yield trial counts and study attributes read under it.

        On an RDB this is one pooled connection and three round trips (lock, one snapshot query,
        unlock): it runs once per trial, so it is kept out of Optuna's ORM sessions.
        """
        asked = time.perf_counter()
        if self.kind not in ("postgresql", "sqlite"):
            with self.study_lock(study_name):
                locked = time.perf_counter()
                counts: dict[str, int] = {}
                lost = 0
                for trial in self.storage.get_all_trials(study_id, deepcopy=False):
                    counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
                    lost += trial.state.name == "FAIL" and _LOST_CAUSE in trial.user_attrs
                attrs = self.storage.get_study_user_attrs(study_id)
                kept = {k: attrs[k] for k in attr_keys if k in attrs}
                try:
                    yield Snapshot(counts, kept, None, self, lost=lost)
                finally:
                    self.lock_times.append((locked - asked, time.perf_counter() - locked))
            return
        import sqlalchemy

        from hpo_core.storage.optuna_internals import snapshot_rows

        engine = self.storage.engine  # type: ignore[attr-defined]
        key = _lock_key(study_name)
        with contextlib.ExitStack() as stack:
            if self.kind == "sqlite":
                stack.enter_context(self.study_lock(study_name))
            conn = stack.enter_context(engine.connect())
            if self.kind == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            locked = time.perf_counter()
            try:
                keys = [*attr_keys, ATTR_LOST_TRIALS]
                counts, attrs = snapshot_rows(conn, study_id, keys)
                lost = int(attrs.pop(ATTR_LOST_TRIALS, 0))
                yield Snapshot(counts, attrs, conn, self, lost=lost)
                conn.commit()
            except BaseException:
                conn.rollback()  # an aborted transaction refuses even the unlock below
                raise
            finally:
                if self.kind == "postgresql":
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                self.lock_times.append((locked - asked, time.perf_counter() - locked))

    def dispose(self) -> None:
        engine = getattr(self.storage, "engine", None)
        if engine is not None:
            engine.dispose()


@dataclass
class Snapshot:
    """Trial counts by state and selected study attributes, read under the study lock."""

    counts: dict[str, int]
    attrs: dict[str, Any]
    _conn: Any
    _handle: StorageHandle
    lost: int = 0  # FAIL trials lost to the infrastructure (also counted in counts["FAIL"])

    def tag_trial(self, trial_id: int, key: str, value: Any) -> None:
        """Set a trial user attribute inside the locked section (same connection on an RDB)."""
        if self._conn is None:
            self._handle.storage.set_trial_user_attr(trial_id, key, value)
            return
        from hpo_core.storage.optuna_internals import upsert_trial_user_attr

        # A re-queued trial carries its predecessor's attributes, so this may overwrite.
        upsert_trial_user_attr(self._conn, [(trial_id, key, value)])


def study_lock_of(storage: BaseStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """:meth:`StorageHandle.study_lock` for a storage known only as opened (e.g. a study's own
    ``_storage``, which Optuna may wrap in a cache). Not re-entrant: a process that holds the
    lock (a reservation) must not take it again."""
    from hpo_core.storage.optuna_internals import journal_file_path, unwrap_storage

    backend = unwrap_storage(storage)
    engine = getattr(backend, "engine", None)
    if engine is not None:
        kind = engine.dialect.name
        url = f"sqlite:///{engine.url.database}" if kind == "sqlite" else ""
        return StorageHandle(url=url, storage=backend, kind=kind).study_lock(study_name)
    # not resolved: the handle that opened it named the lock file by the path as given
    url = f"journal://{os.path.abspath(journal_file_path(backend))}"
    return StorageHandle(url=url, storage=storage, kind="journal").study_lock(study_name)


def _lock_key(study_name: str) -> int:
    digest = hashlib.sha256(f"{_LOCK_NAMESPACE}:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _file_path(url: str) -> str:
    """The file behind a ``journal:`` or ``sqlite:`` URL.

    ``journal:///abs/file`` and ``journal:relative/file`` (``journal://relative/file`` too);
    SQLite follows SQLAlchemy: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``.
    """
    rest = url.split(":", 1)[1]
    if url.startswith("sqlite"):
        return rest[3:] if rest.startswith("///") else ""
    return rest[2:] if rest.startswith("//") else rest


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    create: bool = True,
) -> StorageHandle:
    """Open (and, for RDB storages, create the schema of) the storage behind ``url``.

    Raises :class:`StorageError` naming the masked URL and the reason when it cannot be used.
    """
    import optuna

    from hpo_core.storage.resilient import ResilientRDBStorage

    kind = storage_kind(url)
    shown = mask_url(url)
    if kind in ("postgresql", "sqlite"):
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if kind == "postgresql":
            # Fail fast on an unreachable host; keepalives notice a dead server mid-trial.
            engine_kwargs["connect_args"] = {
                "connect_timeout": 10,
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "application_name": "sweepflow",
            }
            if os.environ.get(ENV_STORAGE_POOL, "").lower() == "none":
                # Behind a connection pooler (PgBouncer in session mode): hold no idle
                # connection, so the server sees only the sessions in use. Transaction mode
                # would break the study lock, a session-level advisory lock.
                import sqlalchemy

                engine_kwargs["poolclass"] = sqlalchemy.pool.NullPool
            else:  # a worker uses one connection, and a second for its heartbeat thread
                engine_kwargs["pool_size"] = 2
                engine_kwargs["max_overflow"] = 4
        else:
            _parent_dir(_file_path(url), shown)

        def build() -> BaseStorage:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return ResilientRDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=stale_trial_callback,
                    skip_table_creation=not create,
                )

        try:
            if kind == "postgresql":
                # N pods starting on a fresh database all run Optuna's CREATE TABLEs at once and
                # collide in the catalog; one at a time, the later ones find the schema there.
                # Opening without creating takes the lock too: Optuna still writes its version
                # row and stamps alembic_version (a CREATE TABLE) on a schema not yet stamped.
                storage = _with_schema_lock(url, engine_kwargs["connect_args"], build)
            else:
                storage = build()
        except Exception as exc:  # sqlalchemy/psycopg2 raise many types; all mean "unusable"
            raise StorageError(f"storage {shown}: cannot connect ({_reason(exc)})") from None
        return StorageHandle(url=url, storage=storage, kind=kind)
    if kind == "journal":
        from optuna.storages.journal import JournalStorage

        from hpo_core.storage.journal import DurableJournalBackend

        path = _file_path(url)
        if not path:
            raise StorageError(f"storage {shown}: no file path; use journal:///abs/path/file")
        if not create and not Path(path).exists():
            raise StorageError(
                f"storage {shown}: no such journal file; run a sweep first, or point --storage "
                "or HPO_STORAGE_URL at the storage that holds your studies"
            )
        _parent_dir(path, shown)
        try:
            backend = DurableJournalBackend(path)  # repairs a torn last record
            return StorageHandle(url=url, storage=JournalStorage(backend), kind=kind)
        except OSError as exc:
            raise StorageError(f"storage {shown}: cannot open ({exc.strerror})") from None
    raise StorageError(
        f"storage {shown}: unsupported URL scheme {kind!r}; use postgresql://..., "
        "journal:///path/to/file or sqlite:///path/to/file"
    )


def _with_schema_lock(
    url: str, connect_args: dict[str, Any], build: Callable[[], BaseStorage]
) -> BaseStorage:
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool
    )
    key = _lock_key("schema")
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                return build()
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def _parent_dir(path: str, shown: str) -> None:
    parent = Path(path).expanduser().resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"storage {shown}: cannot create {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise StorageError(f"storage {shown}: {parent} is not writable")


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message, with any URL in it masked."""
    root: BaseException = exc
    while getattr(root, "orig", None) is not None:
        root = root.orig  # type: ignore[attr-defined]
    text = str(root).strip().splitlines()
    return mask_url(text[0] if text else type(root).__name__)

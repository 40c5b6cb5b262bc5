"""What one worker asks of a PostgreSQL server: its connections, its lock figures."""

from __future__ import annotations

import pytest
import sqlalchemy
import yaml

from hpo_core.spec import parse_spec
from hpo_core.testing import PostgresServer
from hpo_core.worker import run_worker
from tests.helpers import base_spec


@pytest.mark.parametrize("pool", ["", "none"])
def test_a_worker_reports_its_lock_figures_and_holds_no_idle_connection_without_a_pool(
    pool: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HPO_STORAGE_POOL=none (behind PgBouncer in session mode): every storage call opens and
    closes its session, so between calls the worker holds no server connection."""
    from hpo_core.storage import open_storage

    monkeypatch.setenv("HPO_STORAGE_POOL", pool)
    report = run_worker(parse_spec(yaml.safe_dump(base_spec(n_trials=3))), pg_url)
    assert report.complete == 3 and report.reservations == 4  # the last one finds the budget used
    assert 0 < report.lock_hold_ms["p50"] <= report.lock_hold_ms["max"]
    assert report.db_statements > 3 * 10
    handle = open_storage(pg_url)
    engine = handle.storage.engine
    with engine.connect():
        pass
    if pool == "none":
        assert isinstance(engine.pool, sqlalchemy.pool.NullPool)
    else:  # kept for the next call: one connection (plus one for the heartbeat thread)
        assert engine.pool.checkedin() >= 1 and engine.pool.size() == 2
    handle.dispose()


def test_workers_and_readers_opening_a_fresh_database_at_once_never_collide(
    pg_server: PostgresServer,
) -> None:
    """Pods that create the schema and commands that only read it (create=False) start at the
    same moment on a fresh database: Optuna's reader still stamps alembic_version, a CREATE
    TABLE, so without one lock for both they collide in PostgreSQL's catalog."""
    import os
    import threading

    from hpo_core.errors import StorageError
    from hpo_core.storage import open_storage

    errors: list[str] = []
    for round_ in range(4):
        url = pg_server.create_database(f"race_{os.getpid()}_{round_}")
        start = threading.Barrier(6)

        def open_one(create: bool, url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            for _ in range(200):
                try:
                    open_storage(url, create=create).dispose()
                    return
                except StorageError as exc:
                    if "duplicate key" in str(exc) or "already exists" in str(exc):
                        errors.append(str(exc))
                        return
                    threading.Event().wait(0.02)  # a reader before the schema exists: retry

        threads = [threading.Thread(target=open_one, args=(i % 2 == 0,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors

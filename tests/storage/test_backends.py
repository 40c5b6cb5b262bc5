"""What one worker asks of a PostgreSQL server: its connections, its lock figures."""

from __future__ import annotations

import pytest
import sqlalchemy
import yaml

from hpo_core.spec import parse_spec
from hpo_core.worker import run_worker
from tests.conftest import base_spec


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

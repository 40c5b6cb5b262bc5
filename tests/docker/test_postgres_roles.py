"""The compose stack's database roles, on a real PostgreSQL server.

Runs docker/postgres/init-databases.sh (and with it init-databases.sql, exactly what the postgres
image runs on a new volume) against the test session's server, then docker/optuna_init.py as
hpo_owner (what the optuna-init service runs), then checks what each role can do: `hpo worker`
and `hpo status` work as hpo_worker, which cannot drop, truncate or alter Optuna's tables; the
dashboard's hpo_reader can read and not write. The test server trusts local connections, so
passwords are not checked here; the roles and grants are.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import psycopg2
import psycopg2.errors
import pytest

from hpo_core.testing import PostgresServer
from tests.docker.scripts import load_script
from tests.helpers import base_spec, run_hpo

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "docker" / "postgres" / "init-databases.sh"
INIT_SQL = ROOT / "docker" / "postgres" / "init-databases.sql"
DATABASES = ("airflow", "mlflow", "mlflow_auth", "optuna")
ROLES = ("airflow", "mlflow", "hpo_owner", "hpo_worker", "hpo_reader")
PASSWORDS = {
    "AIRFLOW_DB_PASSWORD": "test-airflow-db",
    "MLFLOW_DB_PASSWORD": "test-mlflow-db",
    "HPO_OWNER_DB_PASSWORD": "test-hpo-owner-db",
    "HPO_WORKER_DB_PASSWORD": "test-hpo-worker-db",
    "HPO_READER_DB_PASSWORD": "test-hpo-reader-db",
}

pytestmark = pytest.mark.postgres


def _superuser(server: PostgresServer) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user, dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture
def stack_db(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """The stack's roles and databases on the session's server, removed afterwards (the roles
    are cluster-wide, so other tests on this server must not see them)."""
    env = {
        **os.environ,
        **PASSWORDS,
        "PATH": f"{pg_server.bin}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_server.port),
        "SWEEPFLOW_INIT_SQL": str(INIT_SQL),
    }
    result = subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("init-databases: databases airflow"), result.stdout
        yield pg_server
    finally:
        conn = _superuser(pg_server)
        with conn.cursor() as cur:
            for database in DATABASES:
                cur.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            for role in ROLES:
                cur.execute(f"DROP ROLE IF EXISTS {role}")
            cur.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
        conn.close()


def _url(server: PostgresServer, role: str, database: str = "optuna") -> str:
    return f"postgresql+psycopg2://{role}@127.0.0.1:{server.port}/{database}"


def _connect(
    server: PostgresServer, role: str, database: str = "optuna"
) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=role, dbname=database)
    conn.autocommit = True
    return conn


def _refused(conn: psycopg2.extensions.connection, statement: str) -> str:
    """The error PostgreSQL gives for ``statement``; the test fails if it succeeds."""
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege) as refused:
        cur.execute(statement)
    return str(refused.value).splitlines()[0]


def test_roles_do_what_the_stack_needs_and_no_more(
    stack_db: PostgresServer,
    write_spec: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the owner creates Optuna's schema; the next `up` finds it and changes nothing
    monkeypatch.setenv("HPO_OWNER_STORAGE_URL", _url(stack_db, "hpo_owner"))
    optuna_init = load_script("optuna_init.py")
    for _ in range(2):
        assert optuna_init.main() == 0, capsys.readouterr().err
        assert capsys.readouterr().out.startswith(
            "optuna-init: Optuna's tables are at schema revision"
        )

    # a worker and `hpo status` as the DML-only role
    spec = write_spec(base_spec(n_trials=3))
    env = {"HPO_STORAGE_URL": _url(stack_db, "hpo_worker")}
    worker = run_hpo("worker", "--config", str(spec), env=env)
    assert worker.returncode == 0, worker.stderr
    status = run_hpo("status", "test_study", env=env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("test_study: 3/3 finished"), status.stdout

    worker_conn = _connect(stack_db, "hpo_worker")
    try:
        assert "must be owner of table trials" in _refused(worker_conn, "DROP TABLE trials CASCADE")
        assert "permission denied for table trials" in _refused(
            worker_conn, "TRUNCATE trials CASCADE"
        )
        assert "must be owner of table trials" in _refused(
            worker_conn, "ALTER TABLE trials ADD COLUMN note text"
        )
        assert "permission denied for schema public" in _refused(
            worker_conn, "CREATE TABLE mine (x int)"
        )
        # setval would let a worker make trial ids collide; nextval is all it needs
        assert "permission denied for sequence" in _refused(
            worker_conn, "SELECT setval('trials_trial_id_seq', 1)"
        )
    finally:
        worker_conn.close()
    for database in ("airflow", "mlflow", "mlflow_auth", "postgres"):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            _connect(stack_db, "hpo_worker", database)

    # optuna-dashboard opens the storage like this (its get_rdb_storage), then only reads
    dashboard = optuna.storages.RDBStorage(
        _url(stack_db, "hpo_reader"), skip_compatibility_check=True, skip_table_creation=True
    )
    assert [s.study_name for s in dashboard.get_all_studies()] == ["test_study"]
    assert len(dashboard.get_all_trials(dashboard.get_study_id_from_name("test_study"))) == 3
    dashboard.engine.dispose()
    reader = _connect(stack_db, "hpo_reader")
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM trials")
            assert cur.fetchone() == (3,)
        for statement in (
            "INSERT INTO studies (study_id, study_name) VALUES (999, 'x')",
            "UPDATE trials SET state = 'FAIL'",
            "DELETE FROM trial_values",
        ):
            assert "permission denied for table" in _refused(reader, statement)
    finally:
        reader.close()

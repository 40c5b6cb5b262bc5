"""Shared fixtures: a real PostgreSQL server for the session, fresh databases, spec files, every
test's own HPO_HOME. Plain helpers (base_spec, run_hpo, ...) are in tests/helpers.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.testing import PostgresServer, running_postgres
from tests.helpers import REPO

# `make test` runs one test process per core (-n 2): one intra-op thread each, for them and the
# worker processes they start, rather than every torch process spreading over every core
# (tests/objectives, tests/champions: 249 s with torch's default, 218 s with one thread).
os.environ.setdefault("OMP_NUM_THREADS", "1")

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"journal://{tmp_path / 'studies.journal'}"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's default storage, logs and stop files in its own folder."""
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "hpo_home"))
    monkeypatch.delenv("HPO_STORAGE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session", autouse=True)
def _no_stray_mlflow_store() -> Iterator[None]:
    """MLflow's own defaults are a store in the working folder (./mlflow.db, ./mlruns,
    ./mlartifacts): code or a test reaching MLflow without a tracking URI. One was committed
    once; none may appear in the repository or the working folder during a session."""
    folders = {Path.cwd(), REPO}
    names = ("mlflow.db", "mlruns", "mlartifacts")
    before = {f / n for f in folders for n in names if (f / n).exists()}
    yield
    stray = {f / n for f in folders for n in names if (f / n).exists()} - before
    assert not stray, f"MLflow wrote its default store here: {sorted(map(str, stray))}"


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """write(spec, name="spec.yaml"): a spec (dict as YAML, or text as is) in the test's folder."""

    def write(spec: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for loopback mail and webhook servers."""
    from tests.alert_servers import make_certificate

    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Starts real SMTP servers (STARTTLS, implicit TLS, plain) on loopback on demand."""
    from tests.alert_servers import smtp_servers

    with smtp_servers(certificate) as start:
        yield start

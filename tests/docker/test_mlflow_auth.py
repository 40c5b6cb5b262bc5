"""The compose stack's MLflow server, with authentication on, run for real.

`mlflow server --app-name basic-auth` with the image's docker/mlflow/basic_auth.ini (pointed at
this test's PostgreSQL database instead of the stack's `postgres` host) and the admin password and
CSRF secret from the environment, as docker-compose.yaml runs it. Then what the stack does with
it: mlflow-init's docker/mlflow/ensure_user.py creates the plain account, and `hpo sweep` logs
with that account's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment.
"""

from __future__ import annotations

import configparser
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from hpo_core.testing import MlflowServer, PostgresServer
from tests.docker.scripts import DOCKER, load_script
from tests.helpers import base_spec, run_hpo

INI = DOCKER / "mlflow" / "basic_auth.ini"
ADMIN = {"MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-pw-for-tests"}
ACCOUNT = {"MLFLOW_TRACKING_USERNAME": "sweepflow", "MLFLOW_TRACKING_PASSWORD": "tracking-pw-tests"}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_image_auth_config_keeps_users_in_postgres_without_a_password() -> None:
    config = configparser.ConfigParser()
    config.read(INI)
    database = make_url(config["mlflow"]["database_uri"])
    assert (database.get_backend_name(), database.host, database.database) == (
        "postgresql",
        "postgres",
        "mlflow_auth",
    )
    # the file is baked into the image: libpq reads the password from PGPASSWORD
    assert database.password is None
    assert "admin_password" not in config["mlflow"]
    assert config["mlflow"]["default_permission"] == "READ"


@pytest.fixture
def auth_server(pg_server: PostgresServer, tmp_path: Path) -> Iterator[MlflowServer]:
    tag = f"{os.getpid()}_{time.monotonic_ns() % 10**9}"
    config = configparser.ConfigParser()
    config.read(INI)
    config["mlflow"]["database_uri"] = pg_server.create_database(f"mlflow_auth_{tag}")
    ini = tmp_path / "basic_auth.ini"
    with ini.open("w") as out:
        config.write(out)
    server = MlflowServer(
        pg_server.create_database(f"mlflow_{tag}"),
        tmp_path / "artifacts",
        app_name="basic-auth",
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-for-tests",
            **ADMIN,
        },
    )
    server.start()
    yield server
    server.stop()


def test_server_needs_a_login_and_workers_log_with_the_account_from_env(
    auth_server: MlflowServer,
    write_spec: Callable[..., Path],
    journal_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = auth_server.uri
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert anonymous.value.code == 401

    # mlflow-init: creates the plain account; on the next `up` it sets the password from .env
    ensure = load_script("mlflow/ensure_user.py")
    env = {"MLFLOW_TRACKING_URI": uri, **ADMIN, **ACCOUNT}
    assert ensure.ensure_user(env) == "mlflow-init: account 'sweepflow' created"
    assert ensure.ensure_user(env) == "mlflow-init: account 'sweepflow' password set from .env"
    with pytest.raises(ensure.SetupError, match=r"^MLFLOW_AUTH_ADMIN_PASSWORD: the server refused"):
        ensure.ensure_user({**env, "MLFLOW_AUTH_ADMIN_PASSWORD": "not-the-admin-pw"})
    with pytest.raises(
        ensure.SetupError, match=r"^MLFLOW_TRACKING_USERNAME: must not be the admin"
    ):
        ensure.ensure_user({**env, "MLFLOW_TRACKING_USERNAME": "admin"})
    with pytest.raises(ensure.SetupError, match="Password must be at least 12 characters"):
        ensure.ensure_user({**env, "MLFLOW_TRACKING_PASSWORD": "short"})

    # a sweep logs its parent and trial runs as that account, credentials from the environment
    spec = write_spec(base_spec(n_trials=2))
    sweep = run_hpo(
        "sweep",
        "--config",
        str(spec),
        env={"HPO_STORAGE_URL": journal_url, "MLFLOW_TRACKING_URI": uri, **ACCOUNT},
    )
    assert sweep.returncode == 0, sweep.stderr
    assert "tracking" not in sweep.stderr, sweep.stderr

    from mlflow import MlflowClient

    for name, value in ACCOUNT.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("test_study")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags.get("sweepflow.role") for r in runs} == {"parent", "trial"}
    # champions register models: the plain account may create one
    client.create_registered_model("test_study_champion")

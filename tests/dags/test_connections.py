"""The plugin's connections read back as the URLs they were written as: a webhook keeps its path
and query (its token), a PostgreSQL storage keeps a password with '@', '/' and '%' in it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url


def test_a_webhook_connection_keeps_its_path_and_query(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_core.airflow import alert_target

    url = "https://chat.example.com/v1/spaces/AAA/messages?key=Kw1&token=Vb2"
    monkeypatch.setenv("AIRFLOW_CONN_HPO_ALERTS", url)
    assert alert_target() == url


def test_a_storage_connection_keeps_an_odd_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_core.airflow import storage_url

    monkeypatch.setenv(
        "AIRFLOW_CONN_HPO_STORAGE", "postgres://u:Kw1%40Vb2%2FXc3%25@db:5432/optuna?sslmode=require"
    )
    url = make_url(storage_url())
    assert url.drivername == "postgresql+psycopg2" and url.password == "Kw1@Vb2/Xc3%"
    assert (url.host, url.port, url.database, dict(url.query)) == (
        "db",
        5432,
        "optuna",
        {"sslmode": "require"},
    )


def test_a_tracking_servers_login_goes_to_the_environment_not_the_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow's basic-auth server: the account reaches MLflow (and the workers a task starts)
    as MLFLOW_TRACKING_USERNAME/PASSWORD; the URI, which is stored with the study and shown,
    carries none."""
    import os

    from hpo_core.airflow import tracking_uri

    monkeypatch.setenv("AIRFLOW_CONN_HPO_TRACKING", "http://sweepflow:Kw1%40Vb2@mlflow:5000")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert tracking_uri() == "http://mlflow:5000"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "sweepflow"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "Kw1@Vb2"

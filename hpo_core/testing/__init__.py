"""Test support shipped with the library: a real PostgreSQL server and controlled objectives."""

from __future__ import annotations

from hpo_core.testing.mlflow_server import MlflowServer, running_mlflow_server
from hpo_core.testing.pod_security import restricted_violations
from hpo_core.testing.postgres import PostgresServer, find_pg_bin, running_postgres

__all__ = [
    "MlflowServer",
    "PostgresServer",
    "find_pg_bin",
    "restricted_violations",
    "running_mlflow_server",
    "running_postgres",
]

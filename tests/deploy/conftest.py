"""Airflow's test environment (a temporary AIRFLOW_HOME and its SQLite database), set by
tests/airflow_env.py before Airflow is first imported: the RBAC checks build the operator."""

from __future__ import annotations

import tests.airflow_env  # noqa: F401

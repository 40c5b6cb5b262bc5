"""Airflow's test environment (a temporary AIRFLOW_HOME, the plugins folder on sys.path), set by
tests/dags/conftest.py before Airflow is first imported: the RBAC checks build the operator."""

from __future__ import annotations

import tests.dags.conftest  # noqa: F401

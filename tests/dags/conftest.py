"""Airflow for the DAG tests: its environment is set by tests/airflow_env.py (imported here,
before any test module imports Airflow); the metadata database is migrated once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_env import AIRFLOW_ENV, AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run(
        [airflow, "db", "migrate"],
        env={**os.environ, **AIRFLOW_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield AIRFLOW_HOME

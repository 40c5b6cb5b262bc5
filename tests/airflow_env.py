"""Airflow for the DAG and deployment tests: a SQLite metadata database in a temporary
AIRFLOW_HOME, the repository's dags/ (sweepflow's provider is the installed package: no plugin).
Airflow reads its configuration when it is first imported, so importing this module sets the
environment (tests/dags/conftest.py and tests/deploy/conftest.py import it before any test module
imports Airflow)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers import REPO

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="sweepflow-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
}
os.environ.update(AIRFLOW_ENV)


def run_dag(
    conf: dict[str, Any], env: dict[str, str], *, dag_id: str = "hpo_sweep", timeout: float = 900
) -> dict[str, Any]:
    """`dag.test()` of a DAG in dags/, in a process of its own (its environment: storage and
    tracking connections, HPO_HOME, the config folder). Returns the run's state, every task
    instance's state and the process output."""
    runner = REPO / "scripts" / "dag_test.py"
    full = {**os.environ, **AIRFLOW_ENV, **env}
    done = subprocess.run(
        [sys.executable, str(runner), dag_id, json.dumps(conf)],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("DAGRUN ")]
    assert lines, (
        f"no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1][len("DAGRUN ") :])
    result["output"] = done.stdout + done.stderr
    if os.environ.get("DAG_TEST_OUTPUT"):  # to read a run's task table and timings afterwards
        Path(os.environ["DAG_TEST_OUTPUT"]).write_text(result["output"])
    return result

"""(h) DAG parse time: what the dag-processor pays per parse of dags/hpo_sweep.py.

`warm`: the file executed in a process that has already imported the Airflow SDK (as the
dag-processor has), median of 6 parses after the first; the file itself must not load the
Kubernetes provider (it is imported only when a pod is built). `first`: the first parse in that
process, which also imports hpo_core.pipeline and the plugin. The target is 0.5 s per file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import importlib.util, json, statistics, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
times = []
for i in range(7):
    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location(f"hpo_sweep_{i}", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    times.append(time.perf_counter() - t)
    if i == 0:
        first = times[0]
dags = [k for k, v in vars(module).items() if type(v).__name__ == "DAG"]
assert "kubernetes" not in sys.modules, "the DAG file imported the Kubernetes client"
print(json.dumps({"imports_s": t1 - t0, "first_s": first, "warm_s": statistics.median(times[1:]),
                  "dags": len(dags), "tasks": len(module.hpo_sweep.tasks)}))
"""


def parse_times() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SWEEPFLOW_CONFIG_DIR": str(REPO / "configs" / "hpo"),
        }
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(REPO / "dags" / "hpo_sweep.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "file": "dags/hpo_sweep.py",
        "dags": raw["dags"],
        "tasks_per_dag": raw["tasks"],
        "airflow_imports_s": round(raw["imports_s"], 3),
        "first_parse_s": round(raw["first_s"], 3),
        "warm_parse_s": round(raw["warm_s"], 3),
    }


def render(results: dict[str, Any]) -> list[str]:
    r = results.get("dags")
    if not r:
        return []
    return [
        "",
        "| DAG file | DAGs | tasks per DAG | Airflow SDK import s | first parse s "
        "| warm parse s (median of 6) |",
        "|---|---|---|---|---|---|",
        f"| {r['file']} | {r['dags']} | {r['tasks_per_dag']} | {r['airflow_imports_s']} | "
        f"{r['first_parse_s']} | {r['warm_parse_s']} |",
    ]

"""Run a sweepflow DAG once with Airflow's `dag.test()` (no scheduler; tasks run one by one in
this process) and print its outcome: a table of task states, and one JSON line for scripts.

    python scripts/dag_test.py hpo_sweep '{"config": "demo.yaml", "workers": 1, "allow_cpu": true}'

Airflow must find its metadata database (AIRFLOW_HOME, `airflow db migrate` once), and sweepflow
must be installed (its provider, hpo_core.airflow, comes with it): `make demo` and the tests do
both.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main() -> int:
    dag_id, conf = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    path = Path(__file__).resolve().parents[1] / "dags" / "hpo_sweep.py"
    spec = importlib.util.spec_from_file_location("hpo_sweep_dag", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, dag_id)
    # apache/airflow#73428 (3.3.2): dag.test() of a DAG with a deadline fails after its tasks
    # ran; the deadline only matters to a scheduler anyway
    dag.deadline = None
    run = dag.test(run_conf=conf)
    from airflow.utils.session import create_session

    with create_session() as session:
        ordered = sorted(
            run.get_task_instances(session=session),
            key=lambda t: (t.start_date is None, t.start_date, t.task_id),
        )
        names = [t.task_id + (f"[{t.map_index}]" if t.map_index >= 0 else "") for t in ordered]
        tis = {name: str(ti.state) for name, ti in zip(names, ordered, strict=True)}
        took = {name: ti.duration for name, ti in zip(names, ordered, strict=True)}
    width = max(len(k) for k in tis)
    print(f"{dag_id} run {run.run_id}: {run.state}")
    for task_id, state in tis.items():
        seconds = f"{took[task_id]:7.1f} s" if took[task_id] is not None else ""
        print(f"  {task_id:<{width}}  {state:<16}{seconds}")
    print("DAGRUN " + json.dumps({"state": str(run.state), "tis": tis}), flush=True)
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())

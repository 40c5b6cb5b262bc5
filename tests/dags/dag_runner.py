"""Run one DAG of dags/ with `dag.test()` and print its outcome as one JSON line (tests only)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main() -> None:
    dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
    path = Path(__file__).resolve().parents[2] / "dags" / "hpo_sweep.py"
    spec = importlib.util.spec_from_file_location("hpo_sweep_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, dag_id)
    # apache/airflow#73428 (3.3.2): dag.test() of a DAG with a deadline fails after its tasks ran
    dag.deadline = None
    run = dag.test(run_conf=conf)
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
            for ti in run.get_task_instances(session=session)
        }
    print("DAGRUN " + json.dumps({"state": str(run.state), "tis": tis}), flush=True)


if __name__ == "__main__":
    main()

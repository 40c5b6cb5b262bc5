"""The DAG files load cleanly: no import errors, tags, retries, the expected edges, a valid form,
one scheduled DAG per spec with `schedule:`, and nothing heavy imported at parse time."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.airflow_env import AIRFLOW_ENV
from tests.helpers import REPO


@pytest.fixture
def dagbag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("demo_synthetic.yaml", "demo.yaml"):
        (configs / name).write_text((REPO / "configs" / "hpo" / name).read_text())
    nightly = yaml.safe_load((REPO / "configs" / "hpo" / "demo_synthetic.yaml").read_text())
    nightly.update(study_name="nightly_v1", schedule="0 2 * * *")
    (configs / "nightly.yaml").write_text(yaml.safe_dump(nightly))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    return DagBag(dag_folder=str(REPO / "dags"))


def test_dags_load_with_tags_retries_and_a_schedule_per_config(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"hpo_sweep", "hpo_prelaunch", "hpo_sweep__nightly"}
    prelaunch = dagbag.dags["hpo_prelaunch"]
    assert (
        len(prelaunch.tasks) == 10
        and prelaunch.get_task("prelaunch.checklist").downstream_list == []
    )
    nightly = dagbag.dags["hpo_sweep__nightly"]
    assert nightly.schedule == "0 2 * * *" and nightly.catchup is False
    assert nightly.params["config"] == "nightly.yaml"
    manual = dagbag.dags["hpo_sweep"]
    assert manual.schedule is None
    for dag in dagbag.dags.values():
        assert {"sweepflow", "hpo"} <= set(dag.tags)
        assert dag.doc_md and dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.retries >= 2, task.task_id
            # a failed check alerts through the checklist, which names every failed check
            checks = task.task_id.startswith("prelaunch.check_")
            assert bool(task.on_failure_callback) != checks, task.task_id


def test_the_expected_edges(dagbag: Any) -> None:
    dag = dagbag.dags["hpo_sweep"]

    def up(task_id: str) -> set[str]:
        return set(dag.get_task(task_id).upstream_task_ids)

    def up_to(task_id: str) -> set[str]:
        """Every task before ``task_id``, through any path."""
        return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}

    checks = {
        f"prelaunch.check_{n}"
        for n in ("spec", "storage", "data", "gpu", "disk", "dependencies", "tracking", "smoke")
    }
    assert all(up(c) == {"plan"} for c in checks)
    # the checklist reads every check's result, a failed one's too: it runs whatever they end in
    checklist = dag.get_task("prelaunch.checklist")
    assert up("prelaunch.checklist") == checks and checklist.trigger_rule == "all_done"
    # one alert for failed checks, the checklist's, naming them all
    assert all(not dag.get_task(c).on_failure_callback for c in checks)
    assert up("prepare") == {"plan", "prelaunch.checklist"}
    # tasks read the plan's XCom themselves: no edge from plan to every task
    assert up("segment_0.local_slots") == {"prepare"}
    assert up("segment_0.local_workers") == {"segment_0.local_slots"}
    assert up("segment_0.worker_pods") == {"segment_0.pod_slots"}
    assert {"segment_0.local_workers", "segment_0.worker_pods"} <= up_to("gate_0")
    assert set(dag.get_task("gate_0").downstream_task_ids) == {
        "stop_0",
        "segment_1.local_slots",
        "segment_1.pod_slots",
    }
    assert dag.get_task("gate_0").trigger_rule == "none_failed"
    finish = dag.get_task("finish")
    assert finish.trigger_rule == "none_failed_min_one_success"
    # finish follows prepare (one success when all else is skipped), every stop and the last
    # segment's workers; earlier workers reach it through their gate (fewer edges to draw)
    assert up("finish") == {
        "plan",
        "prepare",
        "stop_0",
        "stop_1",
        "stop_2",
        "segment_3.local_workers",
        "segment_3.worker_pods",
    }
    for i in range(3):
        assert f"segment_{i}.local_workers" in up_to(f"segment_{i + 1}.local_slots")
    assert not any(t.startswith("gate_") for t in up("finish"))  # a branch would skip it

    # a scheduled DAG's spec is known: only the gates and segments it has (checkpoint 20 of 40)
    nightly = dagbag.dags["hpo_sweep__nightly"]
    ids = set(nightly.task_ids)
    assert {"gate_0", "stop_0", "segment_1.local_workers"} <= ids
    assert not {"gate_1", "segment_2.local_slots"} & ids
    assert set(nightly.get_task("finish").upstream_task_ids) >= {
        "stop_0",
        "segment_1.local_workers",
    }


def test_the_form_validates_its_defaults_and_refuses_bad_values(dagbag: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["hpo_sweep"]
    assert dag.params.validate()["workers"] == 2
    # it opens on a config that runs on any machine (not the first by name), and says what
    # each config needs before the person triggers
    assert dag.params["config"] == "demo_synthetic.yaml"
    config = dag.params.get_param("config")
    assert "demo_synthetic.yaml: no GPU, no data file; 40 trials" in config.description
    assert "- `demo.yaml`: a GPU (or Allow CPU), no data file" in config.schema["description_md"]
    assert [k for k in dag.params if not dag.params.get_param(k).description] == []
    assert set(dag.params.get_param("config").schema["enum"]) == {
        "demo.yaml",
        "demo_synthetic.yaml",
        "nightly.yaml",
    }
    for key, bad in (
        ("workers", 0),
        ("workers", 65),
        ("mode", "ssh"),
        ("n_trials", 0),
        ("config", "../../etc/passwd"),
        ("allow_cpu", "yes"),
    ):
        params = copy.deepcopy(dag.params)
        with pytest.raises(ParamValidationError):
            params[key] = bad
            params.validate()


def test_parsing_imports_no_torch_mlflow_kubernetes_or_database_driver(tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(REPO / 'dags' / 'hpo_sweep.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "heavy = ('torch', 'mlflow', 'optuna', 'psycopg2', 'pandas', 'kubernetes',"
        " 'airflow.providers.cncf.kubernetes.operators.pod')\n"
        "print(json.dumps([n for n in heavy if n in sys.modules]))\n"
    )
    env = {
        **os.environ,
        **AIRFLOW_ENV,
        "SWEEPFLOW_CONFIG_DIR": str(REPO / "configs" / "hpo"),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_dag_files_import_only_stdlib_pendulum_and_the_sdk_at_top_level() -> None:
    """The scheduler parses DAG files every few seconds: module-level imports stay light, and
    the plugin and hpo_core are imported where a DAG is built or a task runs."""
    import ast

    allowed = set(sys.stdlib_module_names) | {"__future__", "pendulum", "airflow"}
    for path in sorted((REPO / "dags").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = [
            alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
        ] + [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
        heavy = [n for n in names if n.split(".")[0] not in allowed]
        assert heavy == [], (path.name, heavy)
        sdk = [n for n in names if n.startswith("airflow") and n != "airflow.sdk"]
        assert sdk == [], (path.name, sdk)

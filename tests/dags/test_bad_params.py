"""Bad values in the sweep DAG's trigger form, refused twice: by the form's JSON schema (Airflow
validates a run's params before it is queued) and by `hpo_core.pipeline.plan_run`, the first task,
which must never reach a file outside the config folder. Every refusal names the param."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

GOOD = "demo_synthetic.yaml"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config folder with one good spec and a link that escapes it to a valid spec outside."""
    root = tmp_path_factory.mktemp("dag_params")
    outside = root / "outside.yaml"
    outside.write_text((REPO / "configs" / "hpo" / GOOD).read_text())
    folder = root / "configs"
    folder.mkdir()
    (folder / GOOD).write_text(outside.read_text())
    (folder / "escape.yaml").symlink_to(outside)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPFLOW_CONFIG_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def sweep_dag(config_dir: Path) -> Any:
    """The manual sweep DAG, as the DAG processor loads it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["hpo_sweep"]


@pytest.fixture(scope="module")
def form(sweep_dag: Any) -> Any:
    """The params of the manual sweep DAG, as the UI form validates them."""
    params = sweep_dag.params
    assert params.validate()["config"] == "demo_synthetic.yaml"  # the defaults pass
    return params


def test_the_form_offers_only_files_inside_the_folder(form: Any) -> None:
    """The link to a spec outside the folder is not offered (nor read at parse time)."""
    assert form.get_param("config").schema["enum"] == [GOOD]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("workers", 0, "0 is less than the minimum of 1"),
        ("workers", 65, "65 is greater than the maximum of 64"),
        ("workers", "2", "'2' is not of type 'integer'"),
        ("mode", "ssh", "'ssh' is not one of ['local', 'kubernetes']"),
        ("n_trials", 0, "0 is less than the minimum of 1"),
        ("config", "../../etc/passwd", "'../../etc/passwd' is not one of ["),
        ("config", "/etc/passwd", "'/etc/passwd' is not one of ["),
        ("config", "x.yaml; rm -rf /", "'x.yaml; rm -rf /' is not one of ["),
        ("min_free_gb", -1, "-1 is less than the minimum of 0"),
        ("allow_cpu", "yes", "'yes' is not of type 'boolean'"),
    ],
    ids=[
        "workers_0",
        "workers_65",
        "workers_as_text",
        "unknown_mode",
        "n_trials_0",
        "config_parent_dir",
        "config_absolute_path",
        "config_shell_metacharacters",
        "negative_free_disk",
        "allow_cpu_as_text",
    ],
)
def test_the_form_refuses_a_bad_value_naming_the_param(
    form: Any, key: str, value: Any, message: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(form)
    with pytest.raises(ParamValidationError) as caught:
        params[key] = value
        params.validate()
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"Invalid input for param {key}: {message}"), first


def test_the_plan_accepts_a_config_in_the_folder(config_dir: Path, tmp_path: Path) -> None:
    from hpo_core.pipeline import plan_run

    plan = plan_run({"config": GOOD, "workers": 2}, run_id="manual__ok", home=tmp_path)
    assert plan.config == str(config_dir / GOOD) and plan.workers == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"config": "../outside.yaml"}, "params.config: '../outside.yaml' is not a config file"),
        ({"config": "ABSOLUTE"}, "is not a config file name; choose one of"),
        ({"config": "x.yaml; rm -rf /"}, "params.config: 'x.yaml; rm -rf /' is not a config"),
        ({"config": "x.yaml;rm -rf ~"}, "params.config: no config 'x.yaml;rm -rf ~' in"),
        ({"config": "escape.yaml"}, "params.config: no config 'escape.yaml' in"),
        ({"config": ".."}, "params.config: '..' is not a config file name"),
        ({"config": GOOD, "workers": True}, "params.workers: must be an integer from 1 to 64"),
        ({"config": GOOD, "workers": 65}, "params.workers: must be an integer from 1 to 64"),
        ({"config": GOOD, "mode": "ssh"}, "params.mode: must be 'local' or 'kubernetes'"),
        ({"config": GOOD, "n_trials": True}, "params.n_trials: must be a positive integer"),
        ({"config": GOOD, "gpus": "0;1"}, "params.gpus: '0;1' is not a GPU id"),
        ({"config": GOOD, "gpus": "1,1"}, "params.gpus: GPU 1 is listed twice"),
        (
            {"config": GOOD, "workers": 3, "gpus": "0", "workers_per_gpu": 2},
            "params.workers_per_gpu: 3 workers do not fit on 1 GPU(s) at 2 per GPU",
        ),
        (
            {"config": GOOD, "mode": "kubernetes", "gpus": "0,1"},
            "params.gpus: places local workers only; in kubernetes mode each pod gets the GPUs "
            "of pod.gpus",
        ),
    ],
    ids=[
        "parent_dir",
        "absolute_path_outside",
        "shell_metacharacters",
        "shell_metacharacters_no_slash",
        "symlink_out_of_the_folder",
        "dot_dot",
        "workers_true",
        "workers_65",
        "unknown_mode",
        "n_trials_true",
        "gpus_not_an_id",
        "gpus_listed_twice",
        "more_workers_than_gpus_hold",
        "gpus_in_kubernetes_mode",
    ],
)
def test_the_plan_refuses_bad_params_in_one_line(
    params: dict[str, Any], message: str, config_dir: Path, tmp_path: Path
) -> None:
    from hpo_core.errors import HpoError
    from hpo_core.pipeline import plan_run

    if params.get("config") == "ABSOLUTE":
        params = {**params, "config": str(config_dir.parent / "outside.yaml")}
    with pytest.raises(HpoError) as caught:
        plan_run(params, run_id="manual__bad", home=tmp_path)
    text = str(caught.value)
    assert "\n" not in text and message in text, text
    if text.startswith("params.config"):
        assert str(config_dir) in text and GOOD in text  # where to look, and what to choose


# --- the worker pod: a run may ask for gpus, cpu, memory within the deployment's maxima --------

DEPLOYMENT = {
    "image": "registry.example/ml/sweepflow-worker:2.0",
    "namespace": "research-hpo",
    "max_gpus": 4,
    "max_cpu": "16",
    "max_memory": "64Gi",
}
DEPLOYMENT_ONLY = {
    "image": "attacker.example/miner:latest",
    "namespace": "kube-system",
    "service_account": "cluster-admin",
    "secret": "other-team-credentials",
    "tolerations": [{"operator": "Exists"}],
    "node_selector": {"node-role.kubernetes.io/control-plane": ""},
    "priority_class": "system-cluster-critical",
    "max_gpus": 64,
    "tmp_size": "1Ti",
    "drain_seconds": 10**9,
}


def _kubernetes_plan(pod: Any, connection: Any = None, *, mode: str = "kubernetes") -> Any:
    from hpo_core.pipeline import plan_run

    params = {"config": GOOD, "workers": 2, "mode": mode, "pod": pod}
    return plan_run(params, run_id="manual__pod", pod_connection=connection)


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        ({"image": "evil:latest"}, "Additional properties are not allowed ('image' was unexpected)"),
        ({"namespace": "kube-system"}, "Additional properties are not allowed ('namespace' was"),
        ({"gpus": -1}, "-1 is less than the minimum of 0"),
        ({"gpus": "2"}, "'2' is not of type 'null', 'integer'"),
        ({"cpu": "lots"}, "'lots' does not match"),
        ({"memory": "-16Gi"}, "'-16Gi' does not match"),
    ],
    ids=["image", "namespace", "gpus_negative", "gpus_as_text", "cpu_not_quantity", "memory_negative"],
)
def test_the_form_refuses_a_pod_setting_that_is_not_a_runs(
    form: Any, pod: dict[str, Any], message: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(form)
    with pytest.raises(ParamValidationError) as caught:
        params["pod"] = pod
        params.validate()
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"Invalid input for param pod: {message}"), first


def test_the_form_accepts_a_runs_pod_resources(form: Any) -> None:
    params = copy.deepcopy(form)
    params["pod"] = {"gpus": 2, "cpu": "3500m", "memory": "32Gi"}
    assert params.validate()["pod"] == {"gpus": 2, "cpu": "3500m", "memory": "32Gi"}


@pytest.mark.parametrize("key", sorted(DEPLOYMENT_ONLY))
@pytest.mark.parametrize("mode", ["kubernetes", "local"])
def test_a_run_cannot_set_what_the_deployment_sets(key: str, mode: str, config_dir: Path) -> None:
    """The trigger user's escalation through `pod`: every setting but gpus, cpu, memory is the
    deployment's, whatever the mode, even with the connection defined."""
    from hpo_core.errors import HpoError

    with pytest.raises(HpoError) as caught:
        _kubernetes_plan({key: DEPLOYMENT_ONLY[key], "gpus": 1}, DEPLOYMENT, mode=mode)
    assert str(caught.value) == (
        f"params.pod.{key}: set by the deployment (connection hpo_kubernetes), not by a run; "
        "a run may set gpus, cpu, memory"
    )


@pytest.mark.parametrize(
    ("pod", "connection", "message"),
    [
        ({"gpus": 2}, None, "params.pod.gpus: 2 is above the deployment's maximum of 1 (connection hpo_kubernetes, extra.max_gpus); ask for at most 1"),
        ({"gpus": 5}, DEPLOYMENT, "params.pod.gpus: 5 is above the deployment's maximum of 4"),
        ({"cpu": "16001m"}, DEPLOYMENT, "params.pod.cpu: '16001m' is above the deployment's maximum of '16'"),
        ({"memory": "65Gi"}, DEPLOYMENT, "params.pod.memory: '65Gi' is above the deployment's maximum of '64Gi'"),
        ({"memory": "68719476737"}, DEPLOYMENT, "params.pod.memory: '68719476737' is above"),
        ({"cpu": "4.5"}, {"cpu": "2"}, "params.pod.cpu: '4.5' is above the deployment's maximum of '2'"),
        ({"gpu": 1}, None, "params.pod.gpu: unknown setting; a run may set gpus, cpu, memory"),
        ({"gpus": True}, None, "params.pod.gpus: Input should be a valid integer, got True"),
        ({"cpu": "1K"}, None, "params.pod.cpu: must be a Kubernetes quantity such as"),
        ("gpus=2", None, "params.pod: must be a mapping that sets gpus, cpu, memory, got 'gpus=2'"),
    ],
    ids=[
        "gpus_over_the_default_max",
        "gpus_over_the_connection_max",
        "cpu_over_max",
        "memory_over_max",
        "memory_over_max_in_bytes",
        "cpu_over_the_connections_own_value",
        "unknown_key",
        "gpus_true",
        "cpu_lax_quantity",
        "not_a_mapping",
    ],
)
def test_a_runs_pod_request_beyond_the_deployment_is_refused(
    pod: Any, connection: Any, message: str, config_dir: Path
) -> None:
    from hpo_core.errors import HpoError

    with pytest.raises(HpoError) as caught:
        _kubernetes_plan(pod, connection)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(message), text


def test_a_run_gets_its_resources_within_the_maxima_and_the_deployments_pod(
    config_dir: Path,
) -> None:
    plan = _kubernetes_plan({"gpus": 4, "cpu": "16000m", "memory": "68719476736"}, DEPLOYMENT)
    pod = plan.pod
    assert (pod["gpus"], pod["cpu"], pod["memory"]) == (4, "16000m", "68719476736")  # = 64Gi
    assert pod["image"] == DEPLOYMENT["image"] and pod["namespace"] == "research-hpo"
    assert pod["secret"] == "sweepflow-storage" and pod["service_account"] is None
    # nothing asked: the deployment's values (defaults here), not its maxima
    plan = _kubernetes_plan({}, DEPLOYMENT)
    assert (plan.pod["gpus"], plan.pod["cpu"], plan.pod["memory"]) == (1, "4", "16Gi")
    assert _kubernetes_plan({"gpus": None}, json.dumps(DEPLOYMENT)).pod == plan.pod


def test_the_dags_plan_task_takes_the_pod_from_the_connection_not_the_run(
    sweep_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan task itself (the code `hpo_sweep` runs): it reads the connection and holds the
    run's request to its maxima; over them it fails without a retry, naming the field."""
    from airflow.sdk.exceptions import AirflowFailException

    extra = {**DEPLOYMENT_ONLY, "max_gpus": 4}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HPO_KUBERNETES", json.dumps({"conn_type": "generic", "extra": extra})
    )
    plan = sweep_dag.get_task("plan").python_callable
    params = {"config": GOOD, "workers": 2, "mode": "kubernetes", "pod": {"gpus": 8}}
    context = {"params": params, "run_id": "manual__pod"}
    monkeypatch.setitem(plan.__globals__, "get_current_context", lambda: context)
    with pytest.raises(AirflowFailException, match=r"^params.pod.gpus: 8 is above the deployment's maximum of 4 "):
        plan()
    params["pod"] = {"gpus": 4}
    pod = plan()["pod"]
    assert pod["gpus"] == 4 and pod["image"] == DEPLOYMENT_ONLY["image"]
    assert pod["namespace"] == "kube-system"  # the deployment's to choose, however unwise

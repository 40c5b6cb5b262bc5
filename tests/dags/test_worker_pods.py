"""Kubernetes mode without a cluster: the worker pods KubernetesPodOperator would create, rendered
by the operator itself, validated against the Kubernetes schema, and their command run locally.
No cluster ran here: scheduling, GPU drivers and the Secret's mount are not exercised."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpo_core.pipeline import RunPlan, plan_run, pod_arguments, worker_slots
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from tests.conftest import HPO
from tests.dags.conftest import REPO

CONFIGS = REPO / "configs" / "hpo"


def _plan(monkeypatch: pytest.MonkeyPatch, **pod: Any) -> RunPlan:
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(CONFIGS))
    params = {"config": "demo_synthetic.yaml", "workers": 3, "mode": "kubernetes", "pod": pod}
    return plan_run(params, run_id="manual__2026-11-22")


def _render(plan: RunPlan, slot: dict[str, Any]) -> dict[str, Any]:
    from kubernetes.client import ApiClient
    from sweepflow_airflow import SweepWorkerPodOperator

    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=pod_arguments(plan, slot), pod_settings=plan.pod
    )
    # the KubernetesPodOperator the task runs, and the pod it would create
    pod = operator.pod_operator().build_pod_request_obj(context=None, dry_run=True)
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return rendered


def test_worker_pods_are_valid_kubernetes_with_gpu_secret_and_security(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kubernetes_validate

    plan = _plan(
        monkeypatch,
        image="registry.example/sweepflow-worker:1.2",
        gpus=2,
        node_selector={"gpu": "a100"},
    )
    slots = worker_slots(plan, 0)
    assert len(slots) == 3
    pods = [_render(plan, slot) for slot in slots]
    for pod in pods:
        kubernetes_validate.validate(pod, "1.31", strict=True)  # raises on any schema error
    pod = pods[0]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert pod["metadata"]["namespace"] == "sweepflow"
    assert container["image"] == "registry.example/sweepflow-worker:1.2"
    assert container["command"] == ["hpo"]
    assert container["args"][:3] == ["worker", "--config", "/app/configs/hpo/demo_synthetic.yaml"]
    # the first segment runs to the spec's first checkpoint (decision.checkpoints: [20])
    assert container["args"][3:] == ["--worker-id", "demo_synthetic_v1-s0-w0", "--until", "20"]
    limits = container["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    env = {e["name"]: e for e in container["env"]}
    assert env["HPO_STORAGE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "sweepflow-storage",
        "key": "storage-url",
    }
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["key"] == "tracking-uri"
    assert all("value" not in e or "://" not in e["value"] for e in container["env"])
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]


def test_a_schema_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes_validate

    plan = _plan(monkeypatch)
    pod = _render(plan, worker_slots(plan, 0)[0])
    pod["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.31", strict=True)


def test_bad_pod_settings_are_refused_with_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_core.errors import HpoError

    with pytest.raises(HpoError, match=r"params.pod: unknown setting\(s\) gpu;"):
        _plan(monkeypatch, gpu=1)
    with pytest.raises(HpoError, match=r"params.pod.gpus: must be an integer >= 0"):
        _plan(monkeypatch, gpus="many")


def test_the_pods_command_runs_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The exact arguments of a segment's pod, run here with the config at its local path."""
    plan = _plan(monkeypatch)
    (slot, *_) = worker_slots(plan, 0)
    args = pod_arguments(plan, {**slot, "until": 4})
    args[args.index("--config") + 1] = str(CONFIGS / "demo_synthetic.yaml")
    storage = f"journal://{tmp_path / 'studies.journal'}"
    env = {**os.environ, "HPO_STORAGE_URL": storage, "HPO_HOME": str(tmp_path)}
    done = subprocess.run([HPO, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = load_study("demo_synthetic_v1", open_storage(storage)).study.get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4
    assert "checkpoint of 4 finished trials reached" in done.stderr

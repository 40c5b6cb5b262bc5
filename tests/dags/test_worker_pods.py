"""Kubernetes mode without a cluster: the worker pods KubernetesPodOperator would create, rendered
by the operator itself, validated against the Kubernetes schema and the Pod Security "restricted"
profile, and their command run locally. The deployment's settings (the `hpo_kubernetes`
connection's extra) are checked themselves. Deferral runs for real against a loopback Kubernetes
API (tests/kube_api.py) whose "kubelet" runs the pod's command as a local process: the operator
creates the pod and defers, the KubernetesPodTrigger watches it and copies its log, and the task
resumes in our operator. No cluster ran here: scheduling, GPU drivers and MIG devices, admission,
a real triggerer process and the Secret's mount are not exercised."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.errors import HpoError
from hpo_core.pipeline import RunPlan, plan_run, pod_arguments, pod_settings, worker_slots
from hpo_core.spec import load_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study, load_study
from hpo_core.testing import restricted_violations
from tests.airflow_env import run_dag
from tests.helpers import HPO, REPO
from tests.kube_api import FakeKubernetes, task_context

CONFIGS = REPO / "configs" / "hpo"
DIGEST = "sha256:" + "0123456789abcdef" * 4
DEPLOYMENT = {
    "image": f"registry.example:5000/ml/sweepflow-worker@{DIGEST}",
    "namespace": "research-hpo",
    "secret": "hpo-storage",
    "service_account": "sweepflow-worker",
    "node_selector": {"gpu": "a100"},
    "priority_class": "research-batch",
    "max_gpus": 4,
    "tmp_size": "4Gi",
    "drain_seconds": 1800,
    "gpu_resource": "nvidia.com/mig-1g.10gb",
    "max_termination_grace_seconds": 600,
    "checkpoint_claim": "hpo-checkpoints",
}


@pytest.fixture(scope="module")
def timed_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo spec with `worker.timeout: 7200` (two hours, then no new trial)."""
    folder = tmp_path_factory.mktemp("pod_configs")
    spec = yaml.safe_load((CONFIGS / "demo_synthetic.yaml").read_text())
    spec["worker"] = {"timeout": 7200, "termination_grace_seconds": 300}
    (folder / "demo_synthetic.yaml").write_text(yaml.safe_dump(spec))
    return folder


def _plan(
    monkeypatch: pytest.MonkeyPatch,
    *,
    configs: Path = CONFIGS,
    connection: dict[str, Any] | None = None,
    **pod: Any,
) -> RunPlan:
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    params = {"config": "demo_synthetic.yaml", "workers": 3, "mode": "kubernetes", "pod": pod}
    return plan_run(params, run_id="manual__2026-11-22", pod_connection=connection)


def _render(plan: RunPlan, slot: dict[str, Any]) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    from hpo_core.airflow import SweepWorkerPodOperator

    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=pod_arguments(plan, slot), pod_settings=plan.pod
    )
    # the KubernetesPodOperator the task runs, and the pod it would create
    pod = operator.pod_operator().build_pod_request_obj(context=None, dry_run=True)
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return rendered


def test_worker_pods_are_valid_restricted_kubernetes_from_the_deployment_settings(
    monkeypatch: pytest.MonkeyPatch, timed_configs: Path
) -> None:
    import kubernetes_validate

    monkeypatch.setenv("HPO_ALLOWED_OBJECTIVES", "synthetic")
    monkeypatch.setenv("HPO_ALLOWED_SEARCH_MODULES", "team_search")
    monkeypatch.setenv("HPO_OPTUNAHUB_DIR", "/opt/optunahub-registry/package")

    plan = _plan(monkeypatch, configs=timed_configs, connection=DEPLOYMENT, gpus=2)
    slots = worker_slots(plan, 0)
    assert len(slots) == 3
    pods = [_render(plan, slot) for slot in slots]
    for pod in pods:
        kubernetes_validate.validate(pod, "1.31", strict=True)  # raises on any schema error
        assert restricted_violations(pod) == []
    pod = pods[0]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert pod["metadata"]["namespace"] == "research-hpo"
    assert container["image"] == DEPLOYMENT["image"]  # pinned by digest
    assert container["command"] == ["hpo"]
    # joins the study by name: it runs the spec stored with the study, not a copy in the image
    assert container["args"][:3] == ["worker", "--study", "demo_synthetic_v1"]
    # the spec's worker.timeout; the first segment runs to its first checkpoint (20)
    assert container["args"][3:] == [
        "--timeout", "7200", "--worker-id", "demo_synthetic_v1-s0-w0", "--until", "20"
    ]  # fmt: skip
    assert spec["activeDeadlineSeconds"] == 7200 + 1800  # timeout + the deployment's drain
    assert spec["priorityClassName"] == "research-batch"
    assert spec["serviceAccountName"] == "sweepflow-worker"
    assert spec["automountServiceAccountToken"] is False
    limits = container["resources"]["limits"]
    # GPUs counted in the deployment's resource, here a MIG profile
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "2"}
    # the spec's grace for a checkpoint save, within the deployment's maximum
    assert spec["terminationGracePeriodSeconds"] == 300
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    env = {e["name"]: e for e in container["env"]}
    assert env["HPO_STORAGE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "hpo-storage",
        "key": "storage-url",
    }
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["key"] == "tracking-uri"
    # a tracking server with login: the workers' account, from optional keys of the Secret
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hpo-storage",
        "key": "tracking-password",
        "optional": True,
    }
    assert env["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hpo-storage",
        "key": "storage-password",
        "optional": True,
    }
    assert env["HPO_ALLOWED_OBJECTIVES"]["value"] == "synthetic"  # the deployment's allowlist
    assert env["HPO_ALLOWED_SEARCH_MODULES"]["value"] == "team_search"  # and the samplers'
    assert env["HPO_OPTUNAHUB_DIR"]["value"] == "/opt/optunahub-registry/package"
    assert all("value" not in e or "://" not in e["value"] for e in container["env"])
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # checkpoints outlive the pod: the deployment's claim, where workers keep them by default
    assert spec["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "hpo-checkpoints"}},
    ]
    assert container["volumeMounts"] == [
        {"mountPath": "/tmp", "name": "tmp"},
        {"mountPath": "/tmp/hpo/artifacts", "name": "checkpoints"},
    ]
    assert env["HPO_HOME"]["value"] == "/tmp/hpo"


def test_default_pods_have_a_tmp_limit_and_no_deadline_without_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kubernetes_validate

    plan = _plan(monkeypatch)  # no connection, a spec without worker.timeout
    pod = _render(plan, worker_slots(plan, 0)[0])
    kubernetes_validate.validate(pod, "1.31", strict=True)
    assert restricted_violations(pod) == []
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "sweepflow"
    assert spec["containers"][0]["image"] == "sweepflow-worker:0.1.0"
    assert "--timeout" not in spec["containers"][0]["args"]
    assert "activeDeadlineSeconds" not in spec and "priorityClassName" not in spec
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["terminationGracePeriodSeconds"] == 120  # the deployment's default
    assert spec["automountServiceAccountToken"] is False
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]


def test_a_schema_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes_validate

    plan = _plan(monkeypatch)
    pod = _render(plan, worker_slots(plan, 0)[0])
    pod["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.31", strict=True)


# --- the restricted profile's checks, each on a pod that breaks it -------------------------------


def _context(pod: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = pod["spec"]["containers"][0]["securityContext"]
    return context


def _pod_context(pod: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = pod["spec"]["securityContext"]
    return context


BREAKS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "run_as_root_allowed": (
        lambda p: _context(p).update(runAsNonRoot=False),
        "containers[0].securityContext.runAsNonRoot: must be true",
    ),
    "run_as_non_root_unset": (
        lambda p: (_context(p).pop("runAsNonRoot"), _pod_context(p).pop("runAsNonRoot")),
        "containers[0].securityContext.runAsNonRoot: must be true",
    ),
    "pod_user_root": (
        lambda p: _pod_context(p).update(runAsUser=0),
        "spec.securityContext.runAsUser: must not be 0",
    ),
    "container_user_root": (
        lambda p: _context(p).update(runAsUser=0),
        "containers[0].securityContext.runAsUser: must not be 0",
    ),
    "privilege_escalation": (
        lambda p: _context(p).update(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation: must be false",
    ),
    "privilege_escalation_unset": (
        lambda p: _context(p).pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation: must be false",
    ),
    "capabilities_not_dropped": (
        lambda p: _context(p).update(capabilities={"drop": ["NET_RAW"]}),
        "capabilities.drop: must include ALL",
    ),
    "capability_added": (
        lambda p: _context(p)["capabilities"].update(add=["SYS_ADMIN"]),
        "capabilities.add: SYS_ADMIN not allowed",
    ),
    "seccomp_unconfined": (
        lambda p: _context(p).update(seccompProfile={"type": "Unconfined"}),
        "containers[0].securityContext.seccompProfile.type: 'Unconfined'",
    ),
    "seccomp_pod_unconfined": (
        lambda p: _pod_context(p).update(seccompProfile={"type": "Unconfined"}),
        "spec.securityContext.seccompProfile.type: 'Unconfined'",
    ),
    "seccomp_unset": (
        lambda p: (_context(p).pop("seccompProfile"), _pod_context(p).pop("seccompProfile")),
        "containers[0].securityContext.seccompProfile.type: None",
    ),
    "host_path_volume": (
        lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "spec.volumes[1].hostPath: volume type not allowed",
    ),
    "nfs_volume": (
        lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "a", "path": "/"}}),
        "spec.volumes[1].nfs: volume type not allowed",
    ),
    "host_network": (lambda p: p["spec"].update(hostNetwork=True), "spec.hostNetwork"),
    "host_pid": (lambda p: p["spec"].update(hostPID=True), "spec.hostPID"),
    "host_ipc": (lambda p: p["spec"].update(hostIPC=True), "spec.hostIPC"),
    "host_port": (
        lambda p: p["spec"]["containers"][0].update(
            ports=[{"containerPort": 80, "hostPort": 8080}]
        ),
        "containers[0].ports[0].hostPort: must be unset or 0",
    ),
    "privileged": (
        lambda p: _context(p).update(privileged=True),
        "containers[0].securityContext.privileged",
    ),
    "privileged_init_container": (
        lambda p: p["spec"].update(
            initContainers=[
                {
                    "name": "init",
                    "image": "busybox",
                    "securityContext": {**_context(p), "privileged": True},
                }
            ]
        ),
        "spec.initContainers[0].securityContext.privileged",
    ),
}


@pytest.fixture(scope="module")
def restricted_pod() -> dict[str, Any]:
    """A worker pod as rendered with the defaults (admitted by the restricted profile)."""
    with pytest.MonkeyPatch.context() as mp:
        plan = _plan(mp)
        pod = _render(plan, worker_slots(plan, 0)[0])
    assert restricted_violations(pod) == []
    return pod


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_each_restricted_check_refuses_a_pod_that_breaks_it(
    broken: str, restricted_pod: dict[str, Any]
) -> None:
    breaker, expected = BREAKS[broken]
    pod = copy.deepcopy(restricted_pod)
    breaker(pod)
    found = restricted_violations(pod)
    assert len(found) == 1 and expected in found[0], found


def test_the_restricted_profile_allows_what_it_allows(restricted_pod: dict[str, Any]) -> None:
    pod = copy.deepcopy(restricted_pod)
    _context(pod)["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    _context(pod)["seccompProfile"] = {"type": "Localhost", "localhostProfile": "w.json"}
    pod["spec"]["volumes"].append({"name": "c", "configMap": {"name": "x"}})
    _context(pod).pop("runAsNonRoot")  # the pod's runAsNonRoot covers the container
    assert restricted_violations(pod) == []


# --- the deployment's settings, checked ----------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "sweepflow-worker",
        "sweepflow-worker:0.1.0",
        "registry.example:5000/ml/sweepflow-worker:2026.11-rc_1",
        f"ghcr.io/team/sweepflow-worker@{DIGEST}",
        f"ghcr.io/team/sweepflow-worker:1.2@{DIGEST}",
        "localhost/worker__x.y-z",
    ],
)
def test_image_references_by_tag_or_digest_are_accepted(image: str) -> None:
    assert pod_settings(connection={"image": image})["image"] == image


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"image": "Registry/Worker:1"}, "extra.image: 'Registry/Worker:1' is not an image reference", id='image_uppercase'),
        pytest.param({"image": "worker:1 --privileged"}, "extra.image: 'worker:1 --privileged' is not an image", id='image_with_space'),
        pytest.param({"image": "worker@sha256:abc"}, "extra.image: the digest of 'worker@sha256:abc' must be sha256:<64", id='digest_short'),
        pytest.param({"image": f"worker@{DIGEST.upper()}"}, "must be sha256:<64 lowercase hex digits>", id='digest_uppercase'),
        pytest.param({"image": "worker@md5:" + "0" * 32}, "must be sha256:<64 lowercase hex digits>", id='digest_md5'),
        pytest.param({"image": ""}, "extra.image: '' is not an image reference", id='image_empty'),
        pytest.param({"image": 3}, "extra.image: Input should be a valid string, got 3", id='image_not_text'),
        pytest.param({"namespace": "Research_HPO"}, "extra.namespace: 'Research_HPO' is not a Kubernetes name", id='namespace_invalid'),
        pytest.param({"secret": "a/b"}, "extra.secret: 'a/b' is not a Kubernetes name", id='secret_invalid'),
        pytest.param({"priority_class": "x" * 254}, "extra.priority_class: 'xxxx", id='priority_class_too_long'),
        pytest.param({"tolerations": [{"key": "a", "operator": "Sometimes"}]}, "extra.tolerations.0.operator: Input should be 'Exists' or 'Equal'", id='toleration_operator'),
        pytest.param({"node_selector": {"gpu": True}}, "extra.node_selector.gpu: Input should be a valid string, got True", id='node_selector_not_text'),
        pytest.param({"gpus": "2"}, "extra.gpus: Input should be a valid integer, got '2'", id='gpus_as_text'),
        pytest.param({"max_gpus": -1}, "extra.max_gpus: Input should be greater than or equal to 0, got -1", id='max_gpus_negative'),
        pytest.param({"max_memory": "lots"}, "extra.max_memory: must be a Kubernetes quantity such as", id='max_memory_not_quantity'),
        pytest.param({"tmp_size": "0"}, "extra.tmp_size: must be above 0, got '0'", id='tmp_size_zero'),
        pytest.param({"drain_seconds": 1.5}, "extra.drain_seconds: Input should be a valid integer, got 1.5", id='drain_not_integer'),
        pytest.param({"gpus": 2}, None, id='gpus_default_is_its_max'),  # the deployment's own value is its maximum unless it says one
        pytest.param({"gpus": 8, "max_gpus": 4}, "extra.gpus: 8 is above extra.max_gpus 4; lower gpus or raise max_gpus", id='gpus_above_max'),
        pytest.param({"memory": "65Gi", "max_memory": "64Gi"}, "extra.memory: '65Gi' is above extra.max_memory '64Gi'", id='memory_above_max'),
        pytest.param({"imgae": "x"}, "extra.imgae: unknown setting; known: image, namespace, secret", id='unknown_key'),
        pytest.param({"gpu_resource": "gpu"}, "extra.gpu_resource: 'gpu' is not an extended resource name; write <domain>/<name> outside kubernetes.io", id='gpu_resource_no_domain'),
        pytest.param({"gpu_resource": "kubernetes.io/gpu"}, "extra.gpu_resource: 'kubernetes.io/gpu' is not an extended resource name", id='gpu_resource_native'),
        pytest.param({"gpu_resource": "requests.nvidia.com/gpu"}, "extra.gpu_resource: 'requests.nvidia.com/gpu' is not an", id='gpu_resource_quota_prefix'),
        pytest.param({"gpu_resource": "nvidia.com/mig 1g"}, "extra.gpu_resource: 'nvidia.com/mig 1g' is not an", id='gpu_resource_space'),
        pytest.param({"gpu_resource": "nvidia.com/a/b"}, "extra.gpu_resource: 'nvidia.com/a/b' is not an", id='gpu_resource_two_slashes'),
        pytest.param({"gpu_resource": "Nvidia_com/gpu"}, "extra.gpu_resource: 'Nvidia_com/gpu' is not an", id='gpu_resource_bad_domain'),
        pytest.param({"gpu_resource": "nvidia.com/" + "g" * 64}, "is not an extended resource name", id='gpu_resource_long_name'),
        pytest.param({"termination_grace_seconds": 0}, "extra.termination_grace_seconds: Input should be greater than or equal to 1, got 0", id='grace_zero'),
        pytest.param({"termination_grace_seconds": 900, "max_termination_grace_seconds": 600}, "extra.termination_grace_seconds: 900 is above extra.max_termination_grace_seconds 600; lower termination_grace_seconds or raise max_termination_grace_seconds", id='grace_above_max'),
        pytest.param({"deferrable": "yes"}, "extra.deferrable: Input should be a valid boolean, got 'yes'", id='deferrable_not_bool'),
        pytest.param({"poll_seconds": 0}, "extra.poll_seconds: Input should be greater than or equal to 1, got 0", id='poll_zero'),
        pytest.param({"schedule_timeout_seconds": "1h"}, "extra.schedule_timeout_seconds: Input should be a valid integer, got '1h'", id='schedule_timeout_text'),
        pytest.param("{not json", "connection hpo_kubernetes: extra: not valid JSON", id='not_json'),
        pytest.param('["image"]', "connection hpo_kubernetes: extra: must be a JSON object of pod settings, not a list", id='not_an_object'),
    ],
)
def test_the_deployment_settings_are_checked(extra: Any, message: str | None) -> None:
    if message is None:
        pod_settings(connection=extra)
        return
    with pytest.raises(HpoError) as caught:
        pod_settings(connection=extra)
    text = str(caught.value)
    assert "\n" not in text and text.startswith("connection hpo_kubernetes: extra")
    assert message in text, text


def test_a_spec_grace_above_the_deployments_maximum_fails_the_plan(
    monkeypatch: pytest.MonkeyPatch, timed_configs: Path
) -> None:
    """The spec's 300 s wins over the deployment's 120 s only up to its maximum (by default the
    deployment's own value)."""
    with pytest.raises(HpoError) as caught:
        _plan(monkeypatch, configs=timed_configs)
    assert str(caught.value) == (
        "worker.termination_grace_seconds: 300 is above the deployment's maximum of 120 "
        "(connection hpo_kubernetes, extra.max_termination_grace_seconds); ask for at most 120"
    )


def test_quantities_compare_by_value_with_or_without_the_kubernetes_client() -> None:
    """The small parser used where the kubernetes client is not installed agrees with it."""
    from kubernetes.utils.quantity import parse_quantity as k8s_parse_quantity

    from hpo_core.pipeline import pods

    for text in ("500m", "4", "16Gi", "1.5G", "16000m", ".5", "1e3", "2E-2", "7Ki", "100u", "3n"):
        found = pods._QUANTITY.fullmatch(text)
        assert found is not None
        assert pods._parse_quantity(found) == k8s_parse_quantity(text) == pods.parse_quantity(text)
    for lax in ("1K", "Infinity", "NaN", "-1", "1.2.3", "1 Gi", "", "0x10"):
        with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
            pods.parse_quantity(lax)


def test_the_pods_command_runs_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, timed_configs: Path
) -> None:
    """The exact arguments of a segment's pod (with the spec's timeout), run here against the
    study `prepare` created."""
    plan = _plan(monkeypatch, configs=timed_configs, connection=DEPLOYMENT)
    (slot, *_) = worker_slots(plan, 0)
    args = pod_arguments(plan, {**slot, "until": 4})
    assert args[args.index("--timeout") + 1] == "7200"
    storage = f"journal://{tmp_path / 'studies.journal'}"
    create_study(load_spec(timed_configs / "demo_synthetic.yaml"), open_storage(storage))
    env = {**os.environ, "HPO_STORAGE_URL": storage, "HPO_HOME": str(tmp_path)}
    done = subprocess.run([HPO, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = load_study("demo_synthetic_v1", open_storage(storage)).study.get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4
    assert "checkpoint of 4 finished trials reached" in done.stderr


# --- deferrable pods, against a loopback Kubernetes API ------------------------------------------


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    """The API server the operator, its trigger and their hooks reach through the connection
    `kubernetes_default`; the pods' Secret holds a journal storage in tmp_path."""
    secret = {"storage-url": f"journal://{tmp_path / 'studies.journal'}", "tracking-uri": ""}
    fake = FakeKubernetes(
        tmp_path / "kube", secrets={"sweepflow-storage": secret}, bin_dir=str(Path(HPO).parent)
    )
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", fake.connection)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    yield fake
    fake.close()


@pytest.fixture
def task_log() -> Iterator[Callable[[], str]]:
    """The lines Airflow's loggers emitted, INFO and up, since the last call (the tests' Airflow
    logs WARNING and up only, and an operator's execute configures logging again: so each call
    also starts capturing anew)."""
    import logging

    import structlog
    from structlog.testing import LogCapture

    before = structlog.get_config()
    capture = LogCapture()

    def read() -> str:
        text = "\n".join(str(e["event"]) for e in capture.entries)
        capture.entries.clear()
        structlog.configure(
            processors=[structlog.stdlib.PositionalArgumentsFormatter(), capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )
        return text

    try:
        yield read
    finally:
        structlog.configure(**before)


def _deferred_worker(
    monkeypatch: pytest.MonkeyPatch, kube: FakeKubernetes, study: str, until: int
) -> tuple[Any, Any]:
    """A worker pod created and deferred: (our operator, the TaskDeferred it raised)."""
    from airflow.sdk.exceptions import TaskDeferred

    from hpo_core.airflow import SweepWorkerPodOperator

    plan = _plan(monkeypatch, connection={"poll_seconds": 1, "log_seconds": 1})
    slot = {**worker_slots(plan, 0)[0], "until": until}
    arguments = pod_arguments(plan, slot)
    arguments[arguments.index("--study") + 1] = study
    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=arguments, pod_settings=plan.pod
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(task_context())
    return operator, deferred.value


def test_a_deferred_pod_trains_while_the_triggerer_waits_and_the_task_resumes_in_our_operator(
    monkeypatch: pytest.MonkeyPatch, kube: FakeKubernetes, task_log: Callable[[], str]
) -> None:
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

    storage = kube.secrets["sweepflow-storage"]["storage-url"]
    create_study(load_spec(CONFIGS / "demo_synthetic.yaml"), open_storage(storage))
    operator, deferred = _deferred_worker(monkeypatch, kube, "demo_synthetic_v1", until=6)
    # the pod exists and the task let go of its worker slot, leaving the trigger to watch it
    ((namespace, name),) = kube.pods
    trigger = deferred.trigger
    assert isinstance(trigger, KubernetesPodTrigger)
    assert (trigger.pod_namespace, trigger.pod_name) == (namespace, name) == ("sweepflow", name)
    kwargs = trigger.serialize()[1]
    assert kwargs["termination_grace_period"] == 120  # a killed task deletes with the grace
    assert (kwargs["poll_interval"], kwargs["logging_interval"]) == (1, 1)
    assert (kwargs["schedule_timeout"], kwargs["startup_timeout"]) == (3600, 900)
    # Airflow resumes the task that deferred, ours, by this name
    resume = getattr(operator, deferred.method_name)
    task_log()
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["status"] == "success", event.payload
    # the trigger copied the worker's lines to the task log while the pod ran
    while_deferred = task_log()
    assert "[base] " in while_deferred and "demo_synthetic_v1" in while_deferred, while_deferred
    assert resume(task_context(), event=event.payload) is None
    assert "checkpoint of 6 finished trials reached" in while_deferred + task_log()
    assert name in kube.deleted and not kube.pods  # a succeeded pod is deleted
    trials = load_study("demo_synthetic_v1", open_storage(storage)).study.get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    assert kube.denied == []  # all of it under deploy/rbac.yaml's Role


def test_a_failed_pod_fails_the_resumed_task_and_is_kept(
    monkeypatch: pytest.MonkeyPatch, kube: FakeKubernetes
) -> None:
    from airflow.sdk.exceptions import AirflowException

    operator, deferred = _deferred_worker(monkeypatch, kube, "no_such_study", until=1)
    event = asyncio.run(anext(deferred.trigger.run()))
    assert event.payload["status"] == "failed", event.payload
    with pytest.raises(AirflowException, match="returned a failure"):
        getattr(operator, deferred.method_name)(task_context(), event=event.payload)
    # kept for its logs and events, and marked so a retry makes a new pod, not reattach
    ((_, name),) = kube.pods
    assert kube.pods["sweepflow", name].body["metadata"]["labels"]["already_checked"] == "True"
    assert kube.denied == []


def test_a_deployment_without_a_triggerer_turns_deferral_off(
    kube: FakeKubernetes, task_log: Callable[[], str]
) -> None:
    from hpo_core.airflow import SweepWorkerPodOperator

    settings = pod_settings(connection={"deferrable": False})
    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=["--help"], pod_settings=settings
    )
    task_log()
    assert operator.execute(task_context()) is None  # waits for the pod here, no TaskDeferred
    assert "usage: hpo" in task_log()
    assert len(kube.deleted) == 1 and not kube.pods
    assert kube.denied == []


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_the_sweep_dag_runs_deferred_worker_pods_under_dag_test(
    tmp_path: Path, kube: FakeKubernetes
) -> None:
    """`dag.test()` in kubernetes mode: each mapped worker pod is created, deferred, watched by
    the trigger (run inline by dag.test), and resumed in our operator, segment after segment."""
    spec = yaml.safe_load((CONFIGS / "demo_synthetic.yaml").read_text())
    spec.update(n_trials=6, decision={"checkpoints": [3]})
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "demo.yaml").write_text(yaml.safe_dump(spec))
    storage = kube.secrets["sweepflow-storage"]["storage-url"]
    extra = {"poll_seconds": 1, "log_seconds": 1}
    env = {
        "SWEEPFLOW_CONFIG_DIR": str(configs),
        "HPO_HOME": str(tmp_path / "home"),
        "AIRFLOW_CONN_HPO_STORAGE": storage,
        "AIRFLOW_CONN_HPO_KUBERNETES": json.dumps({"conn_type": "generic", "extra": extra}),
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": kube.connection,
    }
    conf = {
        "config": "demo.yaml",
        "workers": 1,
        "mode": "kubernetes",
        "tracking": False,
        "champions": False,
        "allow_cpu": True,
        "min_free_gb": 0.01,
        "smoke": False,
    }
    result = run_dag(conf, {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}, timeout=600)
    output = result["output"]
    assert result["state"] == "success", output[-4000:]
    pods = {k: v for k, v in result["tis"].items() if ".worker_pods[" in k}
    assert len(pods) == 2 and set(pods.values()) == {"success"}, pods  # 2 segments x 1 pod
    # each pod task deferred, its trigger ran, and the task resumed and deleted its pod
    assert output.count("[DAG TEST] running trigger in line") == 2
    assert len(kube.deleted) == 2 and not kube.pods
    # the workers' own lines reached the task log
    assert "[base] " in output and "joined study demo_synthetic_v1" in output
    trials = load_study("demo_synthetic_v1", open_storage(storage)).study.get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    assert kube.denied == []

"""The cluster kit in deploy/, checked offline: every manifest against the Kubernetes 1.31 schema
(kubernetes-validate, strict), and each one against what the operator renders, so the kit and
the code cannot drift apart: the NetworkPolicy selects the pods the operator makes, the Secret has
the keys the pods read, the connection template passes the same validation a run does and names
the kit's objects. The Helm values are checked against the chart's keys (chart 1.18's
values.schema.json, read through the project's search tool: the chart itself could not be
fetched here, so `helm template` and `helm lint` did not run) and against the kit's names. No
cluster ran any of it: admission, the CNI's enforcement of the NetworkPolicy and the chart's
rendering are not exercised."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from hpo_core.pipeline import pod_settings
from hpo_core.pipeline.pods import pod_deployment
from tests.kube_api import ROLE_FILE

DEPLOY = ROLE_FILE.parent
MANIFESTS = sorted(p.name for p in DEPLOY.glob("*.yaml"))


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(kind: str) -> dict[str, Any]:
    (found,) = [d for name in MANIFESTS for d in _docs(name) if d["kind"] == kind]
    return found


def _worker_pod(**extra: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    from hpo_core.airflow import SweepWorkerPodOperator

    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=["worker"], pod_settings=pod_settings(connection=extra)
    )
    pod = operator.pod_operator().build_pod_request_obj(context=None, dry_run=True)
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return rendered


def _connections() -> dict[str, str]:
    (secret,) = _docs("airflow-connections.yaml")
    connections: dict[str, str] = secret["stringData"]
    return connections


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_valid_kubernetes(name: str) -> None:
    import kubernetes_validate

    docs = _docs(name)
    assert docs, name
    for doc in docs:
        kubernetes_validate.validate(doc, "1.31", strict=True)
        labels = doc["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/part-of") == "sweepflow", doc["metadata"]["name"]


def test_the_namespace_enforces_the_restricted_profile_the_pods_meet() -> None:
    (namespace,) = _docs("namespace.yaml")
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == pod_settings()["namespace"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.31"


def test_the_network_policy_isolates_the_pods_the_operator_makes() -> None:
    (policy,) = _docs("networkpolicy.yaml")
    spec = policy["spec"]
    pod_labels = _worker_pod()["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == pod_settings()["namespace"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec["ingress"] == []  # nothing connects to a worker
    # every egress rule names its peers and ports: a rule without `to` or `ports` opens all
    assert all(rule.get("to") and rule.get("ports") for rule in spec["egress"])
    ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 5000)}


def test_the_storage_secret_has_the_keys_the_pods_read_and_no_real_value() -> None:
    (secret,) = _docs("storage-secret.yaml")
    pod = _worker_pod()
    (container,) = pod["spec"]["containers"]
    read = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    }
    assert set(secret["stringData"]) == read == {
        "storage-url", "storage-password", "tracking-uri", "tracking-username", "tracking-password"
    }  # fmt: skip
    assert secret["metadata"]["namespace"] == pod["metadata"]["namespace"]
    assert secret["stringData"]["tracking-password"] == "change-me"
    assert secret["stringData"]["storage-password"] == "change-me"
    assert make_url(secret["stringData"]["storage-url"]).password is None  # never in a URL


def test_the_connection_template_validates_and_names_the_kits_objects() -> None:
    """hpo_kubernetes passes the check every run's plan makes, and its namespace, Secret,
    service account and priority class are the ones the kit creates."""
    from airflow.sdk import Connection

    connections = _connections()
    assert set(connections) >= {"AIRFLOW_CONN_HPO_STORAGE", "AIRFLOW_CONN_HPO_KUBERNETES"}
    extra = json.loads(connections["AIRFLOW_CONN_HPO_KUBERNETES"])["extra"]
    deployment = pod_deployment(extra)
    assert deployment.namespace == _one("Namespace")["metadata"]["name"]
    assert deployment.secret == _docs("storage-secret.yaml")[0]["metadata"]["name"]
    assert deployment.service_account == _one("ServiceAccount")["metadata"]["name"]
    assert deployment.priority_class == _one("PriorityClass")["metadata"]["name"]
    claim = _one("PersistentVolumeClaim")
    assert deployment.checkpoint_claim == claim["metadata"]["name"]
    assert claim["metadata"]["namespace"] == deployment.namespace
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every worker pod mounts it
    for key in ("AIRFLOW_CONN_HPO_STORAGE", "AIRFLOW_CONN_HPO_TRACKING"):
        conn = Connection.from_json(connections[key], conn_id=key)
        assert conn.password == "change-me", key  # placeholders only, apart from any URL
        assert conn.host.endswith(".sweepflow-data.svc"), key


# chart 1.18 values.schema.json: the key paths deploy/helm/values.yaml may use
CHART_KEYS = {
    "defaultAirflowRepository", "defaultAirflowTag", "airflowVersion",
    "images.airflow.repository", "images.airflow.tag", "images.airflow.pullPolicy",
    "executor", "allowPodLaunching",
    "workers.serviceAccount.name", "workers.resources",
    "triggerer.enabled", "triggerer.replicas", "triggerer.serviceAccount.name",
    "triggerer.resources",
    "dags.persistence.enabled", "dags.gitSync.enabled",
    "env", "extraEnvFrom",
    "data.metadataSecretName", "fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName",
    "postgresql.enabled", "config", "logs.persistence.enabled", "logs.persistence.size",
}  # fmt: skip
# values whose content is free-form (resources, env items, airflow.cfg sections)
OPAQUE = {"workers.resources", "triggerer.resources", "env", "config"}


def _paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in OPAQUE:
            found |= _paths(value, f"{path}.")
        else:
            found.add(path)
    return found


def test_the_helm_values_use_the_charts_keys_and_the_kits_names() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert _paths(values) <= CHART_KEYS, sorted(_paths(values) - CHART_KEYS)
    assert values["executor"] == "KubernetesExecutor"
    assert values["triggerer"]["enabled"] is True and values["triggerer"]["replicas"] >= 1
    assert values["airflowVersion"] == "3.3.2"
    (env_from,) = yaml.safe_load(values["extraEnvFrom"])
    (connections,) = _docs("airflow-connections.yaml")
    assert env_from == {"secretRef": {"name": connections["metadata"]["name"]}}
    assert connections["metadata"]["namespace"] == "airflow"  # the release's namespace
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["SWEEPFLOW_CONFIG_DIR"] == "/opt/airflow/configs/hpo"  # where the image has them
    text = (DEPLOY / "helm" / "values.yaml").read_text()
    assert "change-me" not in text and "password" not in text.lower()  # secrets stay in Secrets

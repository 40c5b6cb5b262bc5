"""The Role in deploy/rbac.yaml against the calls the cncf.kubernetes provider makes.

The KubernetesPodOperator's path (operators/pod.py, utils/pod_manager.py, triggers/pod.py and the
sync and async hooks of hooks/kubernetes.py) is read as code: every CoreV1Api method it names is
resolved to the request the client sends (the path and HTTP method in the kubernetes client's own
source), then to the (verb, resource) the Kubernetes authorizer checks. The Role must grant
exactly those, less the calls the operator never makes as configured here, each with the reason
checked. A provider upgrade that calls something new fails here; so does a Role that grants more.
The same Role is enforced by the loopback API server that the deferral and dag.test() tests run
the operator against (tests/kube_api.py), so a missing grant also fails them. No cluster's RBAC
authorizer ran here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube_api import ROLE_FILE, request_verb, role_grants

DEPLOY = ROLE_FILE.parent
# The operator's path: what runs in the task and in the triggerer
PROVIDER_FILES = ("operators/pod.py", "utils/pod_manager.py", "triggers/pod.py", "hooks/kubernetes.py")
# Calls on that path the worker pods never need, and why (each reason is checked below)
NOT_NEEDED = {
    "connect_get_namespaced_pod_exec": "exec into a sidecar: the XCom sidecar (do_xcom_push is "
    "off) and stopping an istio-proxy (namespace.yaml turns injection off)",
}


def _provider_root() -> Path:
    import airflow.providers.cncf.kubernetes as provider

    return Path(provider.__file__).parent


def _request(method: str) -> tuple[str, str]:
    """The HTTP method and path the kubernetes client sends for a CoreV1Api method."""
    from kubernetes.client import CoreV1Api

    source = inspect.getsource(getattr(CoreV1Api, f"{method}_with_http_info"))
    found = re.search(r"call_api\(\s*'([^']+)',\s*'(\w+)'", source)
    assert found, f"no call_api in CoreV1Api.{method}"
    return found[2], found[1]


def calls_on_the_operators_path() -> dict[str, set[tuple[str, str]]]:
    """CoreV1Api method -> the (verb, resource) pairs its uses need: a direct call is its own
    verb (`watch` with watch=True), a list method handed to a Watch's stream() is `watch`."""
    from kubernetes.client import CoreV1Api

    methods = {m for m in dir(CoreV1Api) if not m.startswith("_") and "with_http_info" not in m}
    found: dict[str, set[tuple[str, str]]] = {}
    for relative in PROVIDER_FILES:
        tree = ast.parse((_provider_root() / relative).read_text())
        streamed = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "stream"
            for arg in node.args
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr not in methods:
                continue
            http, path = _request(node.attr)
            verb, resource = request_verb(http, path.replace("{name}", "x"), {})
            if id(node) in streamed and verb == "list":
                verb = "watch"
            found.setdefault(node.attr, set()).add((verb, resource))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
                and any(k.arg == "watch" and _true(k.value) for k in node.keywords)
            ):
                found[node.func.attr].add(("watch", request_verb(*_request(node.func.attr), {})[1]))
    return found


def _true(value: ast.expr) -> bool:
    return isinstance(value, ast.Constant) and value.value is True


def test_the_role_grants_exactly_what_the_operators_path_calls() -> None:
    calls = calls_on_the_operators_path()
    assert "create_namespaced_pod" in calls and "list_namespaced_event" in calls  # found at all
    needed = {pair for method, pairs in calls.items() if method not in NOT_NEEDED for pair in pairs}
    assert role_grants() == needed, (
        f"the Role grants {sorted(role_grants() - needed)} beyond the calls, and misses "
        f"{sorted(needed - role_grants())} (from {sorted(calls)})"
    )
    # events are watched by the trigger (a list handed to a Watch), not only listed
    assert ("watch", "events") in needed
    assert NOT_NEEDED.keys() <= calls.keys(), "an excused call is gone: drop its excuse"


def test_the_calls_left_out_are_never_made_here() -> None:
    from hpo_core.airflow import SweepWorkerPodOperator
    from hpo_core.pipeline import pod_settings

    operator = SweepWorkerPodOperator(
        task_id="worker_pods", arguments=["worker"], pod_settings=pod_settings()
    )
    assert operator.pod_operator().do_xcom_push is False
    (namespace,) = _docs("namespace.yaml")
    assert namespace["metadata"]["labels"]["istio-injection"] == "disabled"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_the_role_is_bound_to_the_chart_service_accounts_only() -> None:
    """The subjects are the service accounts the Helm values name (release namespace `airflow`),
    and nothing binds a Role to the worker pods' own account."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    docs = _docs("rbac.yaml")
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    subjects = {(s["kind"], s["namespace"], s["name"]) for s in binding["subjects"]}
    assert subjects == {
        ("ServiceAccount", "airflow", values["workers"]["serviceAccount"]["name"]),
        ("ServiceAccount", "airflow", values["triggerer"]["serviceAccount"]["name"]),
    }
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["name"] not in {name for _, _, name in subjects}


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "pods")),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, ("watch", "pods")),
        ("GET", "/api/v1/namespaces/ns/pods/p", {}, ("get", "pods")),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "pods/log")),
        ("POST", "/api/v1/namespaces/ns/pods", {}, ("create", "pods")),
        ("PATCH", "/api/v1/namespaces/ns/pods/p", {}, ("patch", "pods")),
        ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, ("delete", "pods")),
        ("DELETE", "/api/v1/namespaces/ns/pods", {}, ("deletecollection", "pods")),
        ("GET", "/api/v1/namespaces/ns/events", {"watch": "1"}, ("watch", "events")),
    ],
)
def test_requests_resolve_to_the_verbs_rbac_checks(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str]
) -> None:
    assert request_verb(method, path, query) == expected

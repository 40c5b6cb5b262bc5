"""A Kubernetes API server for tests, on loopback: the pods, pod logs and events of the
KubernetesPodOperator's calls, with a "kubelet" that runs a pod's container as a local process.

No cluster can run here, and the KubernetesPodOperator, its trigger and their hooks only talk
HTTP: pointed at this server by a kubeconfig, the real provider code creates, watches, reads the
logs of, patches and deletes pods. Every request is authorized as RBAC would: resolved to the
(verb, resource) the Kubernetes authorizer checks, answered 403 unless the Role of
deploy/rbac.yaml grants it, and recorded, so the tests run the provider under the kit's Role.

What it emulates of a node, and no more: the container's command runs with the pod's env
(values, and secretKeyRef from the Secrets given here), an emptyDir mounted at /tmp is a private
folder (env values under /tmp are moved into it), a delete sends SIGTERM and, after the grace
period, SIGKILL. Scheduling, images, resources, security contexts and admission are not.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

ROLE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "rbac.yaml"


def role_grants(path: Path = ROLE_FILE) -> set[tuple[str, str]]:
    """(verb, resource) pairs the Role(s) in a manifest grant in the core API group."""
    grants = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] == "Role":
            for rule in doc["rules"]:
                assert rule["apiGroups"] == [""], rule
                grants |= {(v, r) for v in rule["verbs"] for r in rule["resources"]}
    return grants


class _TaskInstance:
    dag_id, task_id, run_id, map_index, try_number = "hpo_sweep", "worker_pods", "r1", 0, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def task_context() -> dict[str, Any]:
    """What a KubernetesPodOperator reads of an Airflow task context."""
    return {"ti": _TaskInstance(), "run_id": "r1", "dag": None}


def request_verb(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """(verb, resource) of a core/v1 request, as the API server's RequestInfo resolves them for
    RBAC: a GET of a collection is `list` (or `watch` with watch=true), of one object `get`;
    a subresource is `pods/log`."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] != ["api", "v1"]:
        raise ValueError(f"not a core/v1 path: {path}")
    rest = parts[2:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:]
    if sub:
        resource = f"{resource}/{sub[0]}"
    if method == "GET":
        if name is not None:
            return "get", resource
        return ("watch" if query.get("watch") in ("true", "1") else "list"), resource
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method in verbs:
        return verbs[method], resource
    if method == "DELETE":
        return ("delete" if name is not None else "deletecollection"), resource
    raise ValueError(f"unknown method {method}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selected(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class _Pod:
    body: dict[str, Any]
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    log: list[tuple[float, str]] = field(default_factory=list)
    started: str | None = None
    finished: str | None = None
    deleted_with_grace: int | None = None
    problem: str | None = None  # the container could not be created

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def status(self) -> dict[str, Any]:
        container = self.body["spec"]["containers"][0]
        scheduled = [{"type": "PodScheduled", "status": "True"}]
        base = {"name": container["name"], "image": container.get("image", ""), "imageID": ""}
        if self.problem is not None:
            waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": self.problem}}
            statuses = [{**base, "ready": False, "restartCount": 0, "state": waiting}]
            return {"phase": "Pending", "conditions": scheduled, "containerStatuses": statuses}
        if self.process is None or self.started is None:
            return {"phase": "Pending", "conditions": scheduled}
        code = self.process.poll()
        if code is None:
            state = {"running": {"startedAt": self.started}}
            statuses = [{**base, "ready": True, "restartCount": 0, "state": state}]
            return {"phase": "Running", "conditions": scheduled, "containerStatuses": statuses}
        exit_code = code if code >= 0 else 128 - code  # killed by a signal: 128 + its number
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": self.started,
            "finishedAt": self.finished or _now(),
        }
        statuses = [{**base, "ready": False, "restartCount": 0, "state": {"terminated": terminated}}]
        phase = "Succeeded" if exit_code == 0 else "Failed"
        return {"phase": phase, "conditions": scheduled, "containerStatuses": statuses}

    def manifest(self) -> dict[str, Any]:
        return {**self.body, "status": self.status()}


class FakeKubernetes:
    """The API server and kubelet; ``requests`` holds (verb, resource, namespace) per call,
    ``denied`` those the Role refused, ``kubeconfig`` a file that points a client here."""

    def __init__(
        self,
        folder: Path,
        *,
        secrets: dict[str, dict[str, str]] | None = None,
        bin_dir: str | None = None,
        role: set[tuple[str, str]] | None = None,
    ) -> None:
        self.role = role_grants() if role is None else role
        self.denied: list[tuple[str, str, str]] = []
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.secrets = secrets or {}
        self.path = f"{bin_dir}{os.pathsep}" if bin_dir else ""
        self.pods: dict[tuple[str, str], _Pod] = {}
        self.deleted: dict[str, _Pod] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size)) if size else None
                status, payload = fake._serve(self.command, url.path, query, body)
                if isinstance(payload, bytes):
                    data, kind = payload, "text/plain"
                else:
                    data, kind = json.dumps(payload).encode(), "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a watch cancelled once the pod started)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.kubeconfig = folder / "kubeconfig"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "airflow", "user": {"token": "not-a-secret"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "airflow"}}],
                    "current-context": "fake",
                }
            )
        )

    @property
    def connection(self) -> str:
        """The Airflow connection `kubernetes_default` (JSON, for AIRFLOW_CONN_KUBERNETES_DEFAULT)
        that points the provider's hooks here: KUBECONFIG is read once, when the kubernetes
        client is first imported."""
        extra = {"kube_config_path": str(self.kubeconfig)}
        return json.dumps({"conn_type": "kubernetes", "extra": extra})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for pod in [*self.pods.values(), *self.deleted.values()]:
            if pod.process is not None and pod.process.poll() is None:
                pod.process.kill()
                pod.process.wait()

    def wait_for_pods_to_end(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for pod in [*self.pods.values(), *self.deleted.values()]:
            if pod.process is not None:
                pod.process.wait(timeout=max(0.1, deadline - time.monotonic()))

    # --- the API --------------------------------------------------------------------------------

    def _serve(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        try:
            verb, resource = request_verb(method, path, query)
        except ValueError:
            return 404, {"kind": "Status", "status": "Failure", "code": 404, "message": path}
        parts = [p for p in path.split("/") if p]
        namespace = parts[3] if len(parts) > 3 and parts[2] == "namespaces" else ""
        name = parts[5] if len(parts) > 5 else None
        with self.lock:
            self.requests.append((verb, resource, namespace))
            if (verb, resource) not in self.role:
                self.denied.append((verb, resource, namespace))
                message = f'cannot {verb} resource "{resource}" in namespace "{namespace}"'
                return 403, {"kind": "Status", "status": "Failure", "code": 403,
                             "reason": "Forbidden", "message": message}
        if resource == "events":
            if verb == "watch":  # no events: hold the watch a moment, as a quiet one would
                time.sleep(min(float(query.get("timeoutSeconds", 1)), 0.5))
                return 200, b""
            return 200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []}
        if resource not in ("pods", "pods/log"):
            return 404, {"kind": "Status", "code": 404, "message": f"no {resource} here"}
        if verb == "create":
            return 201, self._create(namespace, body)
        if verb == "list":
            selector = query.get("labelSelector", "")
            items = [
                p.manifest()
                for (ns, _), p in list(self.pods.items())
                if ns == namespace and _selected(p.body["metadata"].get("labels") or {}, selector)
            ]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        pod = self.pods.get((namespace, name or ""))
        if pod is None:
            return 404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"}
        if resource == "pods/log":
            return 200, self._log(pod, query)
        if verb == "patch":
            labels = ((body or {}).get("metadata") or {}).get("labels") or {}
            pod.body["metadata"].setdefault("labels", {}).update(labels)
        if verb == "delete":
            grace = (body or {}).get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            self._delete(namespace, pod, None if grace is None else int(grace))
        return 200, pod.manifest()

    def _create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        meta.setdefault("resourceVersion", "1")
        folder = self.folder / "pods" / meta["name"]
        folder.mkdir(parents=True)
        pod = _Pod(body=body, folder=folder)
        self.pods[(namespace, meta["name"])] = pod
        created = pod.manifest()  # Pending, as the API server answers a create
        self._start(pod)
        return created

    def _start(self, pod: _Pod) -> None:
        container = pod.body["spec"]["containers"][0]
        tmp = str(pod.folder)
        env = {"PATH": f"{self.path}/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8"}
        for item in container.get("env") or []:
            if "value" in item:
                value = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                value = self.secrets.get(ref["name"], {}).get(ref["key"])
                if value is None:
                    if ref.get("optional"):
                        continue
                    pod.problem = f'secret "{ref["name"]}" has no key "{ref["key"]}"'
                    return
            # the pod's /tmp is its emptyDir, a private folder here
            env[item["name"]] = tmp + value[4:] if value.startswith("/tmp") else value
        command = [*container.get("command", []), *container.get("args", [])]
        program = shutil.which(command[0], path=env["PATH"]) or command[0]
        pod.started = _now()
        pod.process = subprocess.Popen(
            [program, *command[1:]],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read_output, args=(pod,), daemon=True).start()

    def _read_output(self, pod: _Pod) -> None:
        assert pod.process is not None and pod.process.stdout is not None
        for raw in pod.process.stdout:
            pod.log.append((time.time(), raw.decode(errors="replace").rstrip("\n")))
        pod.process.wait()
        pod.finished = _now()

    def _log(self, pod: _Pod, query: dict[str, str]) -> bytes:
        since = float(query["sinceSeconds"]) if "sinceSeconds" in query else None
        stamps = query.get("timestamps") in ("true", "1")
        lines = []
        for at, text in list(pod.log):
            if since is not None and at < time.time() - since:
                continue
            stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append(f"{stamp} {text}" if stamps else text)
        return "".join(f"{line}\n" for line in lines).encode()

    def _delete(self, namespace: str, pod: _Pod, grace: int | None) -> None:
        """SIGTERM, then SIGKILL after the grace period (the pod's, unless the call gives one)."""
        if grace is None:
            grace = pod.body["spec"].get("terminationGracePeriodSeconds", 30)
        pod.deleted_with_grace = grace
        self.pods.pop((namespace, pod.name), None)
        self.deleted[pod.name] = pod
        process = pod.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)

        def kill_after_grace() -> None:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

        threading.Thread(target=kill_after_grace, daemon=True).start()

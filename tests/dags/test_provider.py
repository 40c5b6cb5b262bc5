"""sweepflow's Airflow provider as Airflow sees it: found through the wheel's entry point, its four
connection types with their forms, connections of those types read back as the URLs the steps
take, and alerts through the notifiers (mail by the SMTP provider's notifier to a real local
server, a webhook by sweepflow's), never failing the task and never showing a secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import hpo_core
from tests.alert_servers import Webhook, free_port

TYPES = ("hpo_storage", "hpo_tracking", "hpo_alerts", "hpo_kubernetes")
PASSWORD = "Pw7/@%:#? Qj8"  # every character that must be percent-encoded in a URL, and a space
ENCODED = "Pw7%2F%40%25%3A%23%3F%20Qj8"
TOKEN = "Tk9xZq"


def test_airflow_lists_the_provider_with_its_connection_types_and_forms() -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run(
        [airflow, "providers", "list", "-o", "json"],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = {p["package_name"]: p for p in json.loads(done.stdout)}
    assert listed["sweepflow"]["version"] == hpo_core.__version__

    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks
    manager = ProvidersManager()
    for conn_type in TYPES:
        hook = hooks[conn_type]
        assert hook is not None and hook.package_name == "sweepflow", conn_type
        assert hook.hook_class_name.startswith("hpo_core.airflow.hooks."), conn_type
        assert conn_type in manager.field_behaviours
    widgets = manager.connection_form_widgets
    for field in (
        "hpo_storage__sslmode",
        "hpo_tracking__scheme",
        "hpo_alerts__to",
        "hpo_alerts__cafile",
        "hpo_kubernetes__image",
        "hpo_kubernetes__max_gpus",
    ):
        assert widgets[f"extra__{field}"].package_name == "sweepflow"
    manager.initialize_providers_notifications()
    assert "hpo_core.airflow.notifications.WebhookNotifier" in manager.notification


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_connections_of_the_providers_types_read_as_the_steps_take_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpo_core.airflow import alert_target, pod_connection_extra, storage_url, tracking_uri
    from hpo_core.pipeline.pods import pod_deployment

    login = {"login": "u", "password": "Kw1@Vb2/Xc3%"}
    _connection(
        monkeypatch,
        "hpo_storage",
        conn_type="hpo_storage",
        host="db",
        port=5432,
        schema="optuna",
        extra={"sslmode": "require", "journal": ""},
        **login,
    )
    url = make_url(storage_url())
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        "db",
        5432,
        "optuna",
    )
    assert url.password == "Kw1@Vb2/Xc3%" and dict(url.query) == {"sslmode": "require"}

    _connection(monkeypatch, "hpo_tracking", conn_type="hpo_tracking", host="mlflow", port=5000,
                extra={"scheme": "http"}, **login)  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert tracking_uri() == "http://mlflow:5000"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "Kw1@Vb2/Xc3%"

    _connection(monkeypatch, "hpo_alerts", conn_type="hpo_alerts", host="chat.example.com",
                schema="v1/spaces/AAA/messages", extra={"query": "key=Kw1&token=Vb2"})  # fmt: skip
    assert alert_target() == "https://chat.example.com/v1/spaces/AAA/messages?key=Kw1&token=Vb2"

    # the form writes a field left blank as null or "": unset, so the default or maximum holds
    extra = {"image": "registry.example.com/w:1", "gpus": 2, "max_gpus": None, "secret": ""}
    _connection(monkeypatch, "hpo_kubernetes", conn_type="hpo_kubernetes", extra=extra)
    deployment = pod_deployment(pod_connection_extra())
    assert deployment.image == "registry.example.com/w:1" and deployment.secret == "sweepflow-storage"
    assert deployment.maximum("gpus") == 2


@pytest.mark.parametrize("mode", ["starttls", "implicit", "plain"])
def test_mail_alerts_go_through_the_smtp_notifier_over_verified_tls_only(
    smtp_server: Any,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """STARTTLS and smtps deliver with the login over TLS; a server without STARTTLS gets no
    password and no message, and the task goes on (the alert is recorded as not delivered)."""
    from hpo_core.airflow import alert

    port, mailbox = smtp_server(mode)
    scheme = "smtps" if mode == "implicit" else "smtp"
    monkeypatch.setenv(
        "AIRFLOW_CONN_HPO_ALERTS",
        f"{scheme}://alerts:{ENCODED}@127.0.0.1:{port}?to=ops@example.org&cafile={certificate[0]}",
    )
    with caplog.at_level(logging.INFO):
        channel = alert("sweep x stopped", "best 0.91 <3", run_dir=str(tmp_path))
    (entry,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert channel.startswith(f"{scheme}://alerts:***@127.0.0.1:{port}?to=ops@example.org")
    if mode == "plain":
        assert mailbox.logins == [] and mailbox.messages == []
        assert entry["delivered"] is False and channel.endswith("(not delivered)")
        assert f"smtp server 127.0.0.1:{port} offers no STARTTLS" in entry["error"]
    else:
        assert entry["delivered"] is True
        assert mailbox.logins == [("alerts", PASSWORD, True)]
        ((message, over_tls),) = mailbox.messages
        assert over_tls and b"Subject: [sweepflow] sweep x stopped" in message
        body = [p.get_payload(decode=True) for p in message_from_bytes(message).walk()]
        assert b"<pre>best 0.91 &lt;3</pre>" in body
    outputs = "\n".join([caplog.text, (tmp_path / "alerts.jsonl").read_text(), channel])
    assert "Pw7" not in outputs and "Qj8" not in outputs


@pytest.mark.parametrize("case", ["accepts", "unreachable"])
def test_webhook_alerts_go_through_the_webhook_notifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from hpo_core.airflow import alert

    hook = Webhook()
    port = hook.port if case == "accepts" else free_port()
    monkeypatch.setenv("AIRFLOW_CONN_HPO_ALERTS", f"http://127.0.0.1:{port}/services/{TOKEN}")
    channel = alert("sweep x stopped", "best 0.91", run_dir=str(tmp_path))
    entry = json.loads((tmp_path / "alerts.jsonl").read_text())
    assert entry["channel"] == f"http://127.0.0.1:{port}/..." and TOKEN not in json.dumps(entry)
    assert entry["delivered"] is (case == "accepts")
    assert channel == entry["channel"] + ("" if case == "accepts" else " (not delivered)")
    assert hook.received == ([{"subject": "sweep x stopped", "text": "sweep x stopped\nbest 0.91"}]
                             if case == "accepts" else [])  # fmt: skip
    hook.server.shutdown()

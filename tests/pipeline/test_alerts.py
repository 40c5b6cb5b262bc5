"""Alerts against real local servers: an SMTP server (aiosmtpd) with STARTTLS, without it, and
with implicit TLS, trusting a throwaway self-signed certificate through ``?cafile=``; a webhook
(http.server) that accepts, answers 500, or is not there. No password and no webhook token may
reach the log, ``alerts.jsonl`` or the returned channel."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from hpo_core.pipeline import send_alert
from tests.alert_servers import Webhook, free_port

PASSWORD = "Pw7/@%:#? Qj8"  # every character that must be percent-encoded in a URL, and a space
ENCODED = "Pw7%2F%40%25%3A%23%3F%20Qj8"
FRAGMENTS = ("Pw7", "Qj8")
TOKEN = "Tk9xZq"  # a webhook's token, in its path and its query


def _target(scheme: str, port: int, cafile: Path | None, **query: str) -> str:
    args = "".join(f"&{k}={v}" for k, v in query.items())
    ca = f"&cafile={cafile}" if cafile else ""
    return f"{scheme}://alerts:{ENCODED}@127.0.0.1:{port}?to=ops@example.org{ca}{args}"


def _outputs(caplog: pytest.LogCaptureFixture, record: Path, channel: str) -> str:
    """Everything an alert leaves behind that a person may read."""
    return "\n".join([caplog.text, record.read_text(), channel])


def _assert_no_secret(text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_mail_goes_over_tls_with_auth(
    smtp_server: Any,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    scheme: str,
) -> None:
    port, mailbox = smtp_server("starttls" if scheme == "smtp" else "implicit")
    record = tmp_path / "alerts.jsonl"
    with caplog.at_level(logging.INFO):
        channel = send_alert(
            "sweep x stopped",
            "best 0.91",
            target=_target(scheme, port, certificate[0]),
            record=record,
        )
    assert mailbox.logins == [("alerts", PASSWORD, True)]
    ((message, over_tls),) = mailbox.messages
    assert over_tls and b"Subject: [sweepflow] sweep x stopped" in message
    assert json.loads(record.read_text())["delivered"] is True
    assert channel.startswith(f"{scheme}://alerts:***@127.0.0.1:{port}?to=ops@example.org")
    _assert_no_secret(_outputs(caplog, record, channel))


@pytest.mark.parametrize(
    ("mode", "trusted", "query", "error"),
    [
        (
            "plain",
            True,
            {},
            "alert not delivered: smtp server 127.0.0.1:{port} offers no STARTTLS; the password "
            "and message are not sent in plain text",
        ),
        ("starttls", False, {}, "CERTIFICATE_VERIFY_FAILED"),
        (
            "plain",
            True,
            {"tls": "none"},
            "?tls=none is only for a local smtp:// relay without a login",
        ),
    ],
    ids=["no STARTTLS", "untrusted certificate", "plain text with a login"],
)
def test_no_password_leaves_without_verified_tls(
    smtp_server: Any,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    trusted: bool,
    query: dict[str, str],
    error: str,
) -> None:
    port, mailbox = smtp_server(mode)
    record = tmp_path / "alerts.jsonl"
    cafile = certificate[0] if trusted else None
    channel = send_alert("s", "t", target=_target("smtp", port, cafile, **query), record=record)
    assert mailbox.logins == [] and mailbox.messages == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "hpo_core.pipeline.alerts"]
    assert line.startswith("alert not delivered: ") and error.format(port=port) in line
    entry = json.loads(record.read_text())
    assert entry["delivered"] is False and error.format(port=port) in f"alert not delivered: {entry['error']}"
    assert channel.endswith("(not delivered)")
    _assert_no_secret(_outputs(caplog, record, channel))


def test_plain_text_to_a_relay_without_login(smtp_server: Any) -> None:
    port, mailbox = smtp_server("plain")
    relay = f"smtp://127.0.0.1:{port}?to=ops@example.org&tls=none"
    assert send_alert("s", "t", target=relay) == relay
    assert [tls for _, tls in mailbox.messages] == [False] and mailbox.logins == []


@pytest.mark.parametrize(
    ("case", "delivered"),
    [("accepts", True), ("answers 500", False), ("unreachable", False), ("bad path", False)],
)
def test_a_webhook_is_shown_by_scheme_and_host_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, delivered: bool
) -> None:
    hook = Webhook(500 if case == "answers 500" else 200)
    port = free_port() if case == "unreachable" else hook.port
    # a space in the path: http.client refuses it and quotes the URL in its error
    path = f"/services/T0/{TOKEN} x" if case == "bad path" else f"/services/T0/{TOKEN}"
    url = f"http://127.0.0.1:{port}{path}?token={TOKEN}"
    record = tmp_path / "alerts.jsonl"
    with caplog.at_level(logging.INFO):
        channel = send_alert("sweep x stopped", "best 0.91", target=url, record=record)
    entry = json.loads(record.read_text())
    assert entry["channel"] == f"http://127.0.0.1:{port}/..."
    assert entry["delivered"] is delivered
    assert channel == entry["channel"] + ("" if delivered else " (not delivered)")
    assert len(hook.received) == (1 if case in ("accepts", "answers 500") else 0)
    if not delivered:
        assert f"alert not delivered: http://127.0.0.1:{port}/..." in caplog.text
        assert "answered HTTP 500" in entry["error"] or case != "answers 500"
    outputs = _outputs(caplog, record, channel)
    assert f"127.0.0.1:{port}" in outputs
    assert TOKEN not in outputs and "services" not in outputs
    hook.server.shutdown()

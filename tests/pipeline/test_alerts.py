"""Alerts against real local servers: an SMTP server (aiosmtpd) with STARTTLS, without it, and
with implicit TLS, trusting a throwaway self-signed certificate through ``?cafile=``; a webhook
(http.server) that accepts, answers 500, or is not there. No password and no webhook token may
reach the log, ``alerts.jsonl`` or the returned channel."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hpo_core.pipeline import send_alert

PASSWORD = "Pw7/@%:#? Qj8"  # every character that must be percent-encoded in a URL, and a space
ENCODED = "Pw7%2F%40%25%3A%23%3F%20Qj8"
FRAGMENTS = ("Pw7", "Qj8")
TOKEN = "Tk9xZq"  # a webhook's token, in its path and its query


@dataclass
class Mailbox:
    """What the SMTP server saw: logins (with whether TLS was on) and messages."""

    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    messages: list[tuple[bytes, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((bytes(envelope.original_content or b""), _tls(server, session)))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode(), _tls(server, session)))
        return AuthResult(success=True)


def _tls(server: SMTP, session: Session) -> bool:
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sweepflow test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Starts an SMTP server: ``start(mode)`` with mode ``starttls``, ``plain`` (offers AUTH but
    no STARTTLS) or ``implicit`` (smtps); returns (port, mailbox)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controllers: list[Controller] = []

    def start(mode: str) -> tuple[int, Mailbox]:
        mailbox = Mailbox()
        port = _free_port()
        options: dict[str, Any] = {"authenticator": mailbox.authenticate}
        if mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif mode == "plain":
            options.update(auth_require_tls=False)
        else:  # aiosmtpd sees only STARTTLS as TLS for AUTH; _tls() checks the socket itself
            options.update(ssl_context=context, auth_require_tls=False)
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port, mailbox

    yield start
    for controller in controllers:
        controller.stop()


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


class Webhook:
    """A real HTTP endpoint on loopback: answers ``status`` and records the bodies."""

    def __init__(self, status: int) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.mark.parametrize(
    ("case", "delivered"),
    [("accepts", True), ("answers 500", False), ("unreachable", False), ("bad path", False)],
)
def test_a_webhook_is_shown_by_scheme_and_host_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, delivered: bool
) -> None:
    hook = Webhook(500 if case == "answers 500" else 200)
    port = _free_port() if case == "unreachable" else hook.port
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

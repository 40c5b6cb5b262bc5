"""Real local alert endpoints for the alert tests: an SMTP server (aiosmtpd) with STARTTLS,
without it, or with implicit TLS, on a throwaway self-signed certificate; a webhook (http.server)
that answers a chosen status and records what it received."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM files."""
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_servers(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Yields ``start(mode)``: starts an SMTP server with mode ``starttls``, ``plain`` (offers
    AUTH but no STARTTLS) or ``implicit`` (smtps) and returns (port, mailbox); all are stopped
    on exit."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controllers: list[Controller] = []

    def start(mode: str) -> tuple[int, Mailbox]:
        mailbox = Mailbox()
        port = free_port()
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

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


class Webhook:
    """A real HTTP endpoint on loopback: answers ``status`` and records the bodies."""

    def __init__(self, status: int = 200) -> None:
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

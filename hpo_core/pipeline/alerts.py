"""Alerts: a stopped sweep, a failed-trial rate over the spec's limit, a failed task.

:func:`deliver_alert` is what every alert goes through, whoever sends it: it masks URLs in the
message, never raises (an alert that cannot be delivered is one error line in the log, and the
run goes on), and appends each alert to the run's ``alerts.jsonl``. Messages carry the study, the
figures and the report's path, never a credential. Airflow tasks send through Airflow notifiers
(:mod:`hpo_core.airflow.notifications`); :func:`send_alert` is the small sender for everything
else, given the target as one URL:

- A webhook (``http(s)://``, a JSON POST of ``{"subject", "text"}``: Slack-style incoming webhooks,
  Teams, a chat bot). Its token lives in the path or query, so the webhook is logged and recorded
  as its scheme and host only (``https://hooks.slack.com/...``), also when delivery fails.
- Email: ``smtp://user:pass@host:587?to=a@example.org&from=b@example.org`` sends over STARTTLS
  (the default port 587), ``smtps://...`` over implicit TLS (port 465). The server's certificate is
  verified (``?cafile=/path/ca.pem`` trusts an internal CA). A server that offers no STARTTLS gets
  no password and no message: the alert fails. ``?tls=none`` sends in plain text to a local relay
  (default port 25), and only without a user and password.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

from hpo_core.storage import mask_url, url_origin

__all__ = [
    "AlertNotDelivered",
    "MailSettings",
    "alert_channel",
    "check_mail_settings",
    "deliver_alert",
    "no_starttls",
    "parse_target",
    "post_webhook",
    "send_alert",
]

_log = logging.getLogger(__name__)

SMTP_PORTS = {"smtp": 587, "smtps": 465}
PLAIN_SMTP_PORT = 25


class AlertNotDelivered(Exception):
    """An alert target that refused, failed or is misconfigured; the message holds no secret."""


def send_alert(
    subject: str,
    text: str,
    *,
    target: str | None = None,
    record: str | Path | None = None,
    timeout: float = 10.0,
) -> str:
    """Send one alert to ``target`` (a webhook or mail URL; None: the log only). Returns where
    it went, as :func:`deliver_alert` does, and never raises."""

    def send(subject: str, text: str) -> None:
        url = parse_target(str(target))
        if url.scheme in ("http", "https"):
            _post(url, subject, text, timeout)
        else:
            _mail(str(target), subject, text, timeout)

    return deliver_alert(subject, text, target=target, send=send, record=record)


def deliver_alert(
    subject: str,
    text: str,
    *,
    target: str | None,
    send: Callable[[str, str], None],
    record: str | Path | None = None,
) -> str:
    """Send one alert with ``send(subject, text)`` (not called without a target); returns where
    it went (scheme and host for a webhook, the masked URL for email, ``log`` without a target),
    with `` (not delivered)`` when it failed. Never raises: an alert that cannot be delivered is
    one error line in the log, and the run goes on."""
    subject, text = mask_url(subject), mask_url(text)
    channel = "log" if not target else alert_channel(target)
    error: str | None = None
    try:
        if target:
            send(subject, text)
        _log.warning("ALERT %s: %s (sent to %s)", subject, text, channel)
    except Exception as exc:  # an alert must never fail the task that raises it
        error = _reason(exc, target or "")
        _log.error("alert not delivered: %s; the alert: %s: %s", error, subject, text)
    if record is not None:
        _record(Path(record), subject, text, channel, error)
    return channel if error is None else f"{channel} (not delivered)"


def _scheme(target: str) -> str:
    head, separator, _ = target.strip().partition("://")
    return head.lower() if separator else ""


def alert_channel(target: str) -> str:
    """How a target is shown: the masked URL for email (host, port, recipients), scheme and host
    only for anything else (a webhook's token is its path)."""
    return mask_url(target.strip()) if _scheme(target) in SMTP_PORTS else url_origin(target)


def parse_target(target: str) -> SplitResult:
    """The target URL, parsed; :class:`AlertNotDelivered` (saying what to fix) if it is not a
    webhook or mail URL with a host."""
    if _scheme(target) not in ("http", "https", *SMTP_PORTS):
        raise AlertNotDelivered(
            "the alert target must start with https://, http://, smtp:// or smtps://"
        )
    try:
        url = urlsplit(target.strip())
        url.port  # noqa: B018  (parsing it is the check: urllib would quote the bad part)
    except ValueError:
        raise AlertNotDelivered(
            "the alert target does not parse as a URL: percent-encode any '/', '@', ':', '#', "
            "'?' or space in its user and password"
        ) from None
    if not url.hostname:
        raise AlertNotDelivered(f"the alert target {alert_channel(target)} names no host")
    return url


def _reason(exc: BaseException, target: str) -> str:
    """One line on why delivery failed, without the target's secrets: urllib and http.client
    quote the URL or a part of it in some errors (``InvalidURL``, ``nonnumeric port``)."""
    if isinstance(exc, AlertNotDelivered):
        return str(exc)
    message = str(exc)
    try:
        parts = urlsplit(target.strip())
        secrets = {target.strip(), parts.netloc.rpartition("@")[0], parts.path, parts.query}
        secrets |= {parts.fragment, parts.username or "", parts.password or ""}
    except ValueError:
        secrets, message = set(), ""
    for secret in sorted({*secrets, *map(unquote, secrets)}, key=len, reverse=True):
        if len(secret) > 1:
            message = message.replace(secret, "...")
    message = " ".join(mask_url(message).split())
    return f"{alert_channel(target)}: {type(exc).__name__}" + (f": {message}" if message else "")


def _record(path: Path, subject: str, text: str, channel: str, error: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "subject": subject,
        "text": text,
        "channel": channel,
        "delivered": error is None,
    }
    if error is not None:
        entry["error"] = error
    # one short line appended with one write: concurrent tasks' lines do not interleave
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def post_webhook(target: str, subject: str, text: str, *, timeout: float = 10.0) -> None:
    """POST ``{"subject", "text"}`` as JSON to a webhook URL; raises when it is not delivered."""
    url = parse_target(target)
    if url.scheme not in ("http", "https"):
        raise AlertNotDelivered("a webhook target must start with https:// or http://")
    _post(url, subject, text, timeout)


def _post(url: SplitResult, subject: str, text: str, timeout: float) -> None:
    import base64
    import urllib.error
    import urllib.request

    body = json.dumps({"subject": subject, "text": f"{subject}\n{text}"}).encode()
    headers = {"Content-Type": "application/json"}
    if url.username is not None:  # urllib ignores user-info: send it as Basic auth instead
        login = f"{unquote(url.username)}:{unquote(url.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        url = url._replace(netloc=url.netloc.rpartition("@")[2])
    request = urllib.request.Request(urlunsplit(url), data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:  # it carries the URL: keep only the status
        status = exc.code
        exc.close()
    if status >= 300:
        raise AlertNotDelivered(f"{url_origin(urlunsplit(url))} answered HTTP {status}")


@dataclass(frozen=True)
class MailSettings:
    """A mail target, checked: where to connect, how, and who gets the alert."""

    scheme: str  # smtp (STARTTLS unless tls is "none") or smtps (implicit TLS)
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    recipients: list[str]
    sender: str
    starttls: bool
    cafile: str | None


def check_mail_settings(target: str) -> MailSettings:
    """The mail target's settings; :class:`AlertNotDelivered` naming the fix when they would
    send a password or a message in plain text, or miss a recipient or a CA file."""
    parts = parse_target(target)
    query = parse_qs(parts.query)
    recipients = [a.strip() for value in query.get("to", []) for a in value.split(",") if a.strip()]
    if not recipients:
        raise AlertNotDelivered("smtp alert target: needs ?to=address (several: comma-separated)")
    tls = query.get("tls", ["starttls"])[0].lower()
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if tls == "none":
        if parts.scheme != "smtp" or user or password:
            raise AlertNotDelivered(
                "smtp alert target: ?tls=none is only for a local smtp:// relay without a login; "
                "drop the user and password, or drop ?tls=none to send over STARTTLS"
            )
    elif tls != "starttls":
        raise AlertNotDelivered(
            f"smtp alert target: ?tls={tls} is not known; leave it out for STARTTLS, or "
            "?tls=none for a local relay without a login"
        )
    host = str(parts.hostname)
    cafile = query.get("cafile", [None])[0]
    if cafile is not None and not Path(cafile).is_file():
        raise AlertNotDelivered(
            f"smtp alert target: ?cafile={cafile}: no such file (give a PEM file of trusted CAs)"
        )
    return MailSettings(
        scheme=parts.scheme,
        host=host,
        port=parts.port or (PLAIN_SMTP_PORT if tls == "none" else SMTP_PORTS[parts.scheme]),
        user=user,
        password=password,
        recipients=recipients,
        sender=query.get("from", [f"sweepflow@{host}"])[0],
        starttls=parts.scheme == "smtp" and tls != "none",
        cafile=cafile,
    )


def no_starttls(mail: MailSettings) -> AlertNotDelivered:
    """The error for a server that refused STARTTLS: nothing was sent, and it says so."""
    return AlertNotDelivered(
        f"smtp server {mail.host}:{mail.port} offers no STARTTLS; the password and message "
        "are not sent in plain text (use a server with STARTTLS, or smtps://)"
    )


def _mail(target: str, subject: str, text: str, timeout: float) -> None:
    import smtplib
    import ssl
    from email.message import EmailMessage

    mail = check_mail_settings(target)
    context = ssl.create_default_context(cafile=mail.cafile)
    message = EmailMessage()
    message["Subject"] = f"[sweepflow] {subject}"
    message["From"] = mail.sender
    message["To"] = ", ".join(mail.recipients)
    message.set_content(text)
    smtp = (
        smtplib.SMTP_SSL(mail.host, mail.port, timeout=timeout, context=context)
        if mail.scheme == "smtps"
        else smtplib.SMTP(mail.host, mail.port, timeout=timeout)
    )
    with smtp:
        if mail.starttls:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise no_starttls(mail)
            smtp.starttls(context=context)
            smtp.ehlo()
        if mail.user:
            smtp.login(mail.user, mail.password)
        smtp.send_message(message)

"""Alerts: a stopped sweep, a failed-trial rate over the spec's limit, a failed task.

Sent to the target an Airflow connection (``hpo_alerts``) describes, or logged when there is none;
every alert is also appended to the run's ``alerts.jsonl``. Messages carry the study, the figures
and the report's path, never a credential.

- A webhook (``http(s)://``, a JSON POST of ``{"subject", "text"}``: Slack-style incoming webhooks,
  Teams, a chat bot). Its token lives in the path or query, so the webhook is logged and recorded
  as its scheme and host only (``https://hooks.slack.com/...``), also when delivery fails.
- Email: ``smtp://user:pass@host:587?to=a@example.org&from=b@example.org`` sends over STARTTLS
  (the default port 587), ``smtps://...`` over implicit TLS (port 465). The server's certificate is
  verified (``?cafile=/path/ca.pem`` trusts an internal CA). A server that offers no STARTTLS gets
  no password and no message: the alert fails. ``?tls=none`` sends in plain text to a local relay
  (default port 25), and only without a user and password.

smtplib rather than the Airflow SMTP provider's ``SmtpHook``: the hook is an Airflow hook that
reads its connection itself (``hpo_core`` must not import Airflow) and takes no CA file.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

from hpo_core.storage import mask_url, url_origin

__all__ = ["send_alert"]

_log = logging.getLogger(__name__)

_SMTP_PORTS = {"smtp": 587, "smtps": 465}
_PLAIN_SMTP_PORT = 25


class _NotDelivered(Exception):
    """An alert target that refused, failed or is misconfigured; the message holds no secret."""


def send_alert(
    subject: str,
    text: str,
    *,
    target: str | None = None,
    record: str | Path | None = None,
    timeout: float = 10.0,
) -> str:
    """Send one alert; returns where it went (scheme and host for a webhook, the masked URL for
    email, ``log`` without a target), with `` (not delivered)`` when it failed. Never raises: an
    alert that cannot be delivered is one error line in the log, and the run goes on."""
    subject, text = mask_url(subject), mask_url(text)
    channel = "log" if not target else _channel(target)
    error: str | None = None
    try:
        if target:
            url = _parse_target(target)
            if url.scheme in ("http", "https"):
                _post(url, subject, text, timeout)
            else:
                _mail(url, subject, text, timeout)
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


def _channel(target: str) -> str:
    """How a target is shown: the masked URL for email (host, port, recipients), scheme and host
    only for anything else (a webhook's token is its path)."""
    return mask_url(target.strip()) if _scheme(target) in _SMTP_PORTS else url_origin(target)


def _parse_target(target: str) -> SplitResult:
    if _scheme(target) not in ("http", "https", *_SMTP_PORTS):
        raise _NotDelivered(
            "the alert target must start with https://, http://, smtp:// or smtps://"
        )
    try:
        url = urlsplit(target.strip())
        url.port  # noqa: B018  (parsing it is the check: urllib would quote the bad part)
    except ValueError:
        raise _NotDelivered(
            "the alert target does not parse as a URL: percent-encode any '/', '@', ':', '#', "
            "'?' or space in its user and password"
        ) from None
    if not url.hostname:
        raise _NotDelivered(f"the alert target {_channel(target)} names no host")
    return url


def _reason(exc: BaseException, target: str) -> str:
    """One line on why delivery failed, without the target's secrets: urllib and http.client
    quote the URL or a part of it in some errors (``InvalidURL``, ``nonnumeric port``)."""
    if isinstance(exc, _NotDelivered):
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
    return f"{_channel(target)}: {type(exc).__name__}" + (f": {message}" if message else "")


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
        raise _NotDelivered(f"{url_origin(urlunsplit(url))} answered HTTP {status}")


def _mail(parts: SplitResult, subject: str, text: str, timeout: float) -> None:
    import smtplib
    import ssl
    from email.message import EmailMessage

    query = parse_qs(parts.query)
    recipients = [a.strip() for value in query.get("to", []) for a in value.split(",") if a.strip()]
    if not recipients:
        raise _NotDelivered("smtp alert target: needs ?to=address (several: comma-separated)")
    tls = query.get("tls", ["starttls"])[0].lower()
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if tls == "none":
        if parts.scheme != "smtp" or user or password:
            raise _NotDelivered(
                "smtp alert target: ?tls=none is only for a local smtp:// relay without a login; "
                "drop the user and password, or drop ?tls=none to send over STARTTLS"
            )
    elif tls != "starttls":
        raise _NotDelivered(
            f"smtp alert target: ?tls={tls} is not known; leave it out for STARTTLS, or "
            "?tls=none for a local relay without a login"
        )
    host = str(parts.hostname)
    port = parts.port or (_PLAIN_SMTP_PORT if tls == "none" else _SMTP_PORTS[parts.scheme])
    cafile = query.get("cafile", [None])[0]
    if cafile is not None and not Path(cafile).is_file():
        raise _NotDelivered(
            f"smtp alert target: ?cafile={cafile}: no such file (give a PEM file of trusted CAs)"
        )
    context = ssl.create_default_context(cafile=cafile)
    message = EmailMessage()
    message["Subject"] = f"[sweepflow] {subject}"
    message["From"] = query.get("from", [f"sweepflow@{host}"])[0]
    message["To"] = ", ".join(recipients)
    message.set_content(text)
    smtp = (
        smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        if parts.scheme == "smtps"
        else smtplib.SMTP(host, port, timeout=timeout)
    )
    with smtp:
        if parts.scheme == "smtp" and tls != "none":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise _NotDelivered(
                    f"smtp server {host}:{port} offers no STARTTLS; the password and message "
                    "are not sent in plain text (use a server with STARTTLS, or smtps://)"
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if user:
            smtp.login(user, password)
        smtp.send_message(message)

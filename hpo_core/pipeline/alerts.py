"""Alerts: a stopped sweep, a failed-trial rate over the spec's limit, a failed task.

Sent to the target an Airflow connection (``hpo_alerts``) describes: a webhook (``http(s)://``,
a JSON POST of ``{"subject", "text"}``: Slack-style incoming webhooks, Teams, a chat bot) or email
(``smtp://user@host:port?to=a@example.org&from=b@example.org``). With none configured the alert
is logged. Every alert is also appended to the run's ``alerts.jsonl``. Messages carry the study,
the figures and the report's path, never a credential.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from hpo_core.storage import mask_url

__all__ = ["send_alert"]

_log = logging.getLogger(__name__)


def send_alert(
    subject: str,
    text: str,
    *,
    target: str | None = None,
    record: str | Path | None = None,
    timeout: float = 10.0,
) -> str:
    """Send one alert; returns where it went (masked). Never raises: an alert that cannot be
    delivered is logged as an error, and the run goes on."""
    channel = "log"
    try:
        if target:
            channel = mask_url(target)
            scheme = urlsplit(target).scheme.lower()
            if scheme in ("http", "https"):
                _post(target, subject, text, timeout)
            elif scheme in ("smtp", "smtps"):
                _mail(target, subject, text, timeout)
            else:
                raise ValueError(f"unsupported alert target scheme {scheme!r}")
        _log.warning("ALERT %s: %s", subject, text)
    except Exception as exc:  # an alert must never fail the task that raises it
        _log.error("ALERT %s: %s (not delivered to %s: %s)", subject, text, channel, exc)
        channel = f"{channel} (failed: {type(exc).__name__})"
    if record is not None:
        path = Path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "subject": subject,
            "text": text,
            "channel": channel,
        }
        with open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    return channel


def _post(url: str, subject: str, text: str, timeout: float) -> None:
    import urllib.request

    body = json.dumps({"subject": subject, "text": f"{subject}\n{text}"}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        if reply.status >= 300:
            raise OSError(f"webhook answered {reply.status}")


def _mail(url: str, subject: str, text: str, timeout: float) -> None:
    import smtplib
    from email.message import EmailMessage

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    recipients = [a for value in query.get("to", []) for a in value.split(",") if a]
    if not recipients:
        raise ValueError("the smtp alert connection needs ?to=address")
    message = EmailMessage()
    message["Subject"] = f"[sweepflow] {subject}"
    message["From"] = query.get("from", [f"sweepflow@{parts.hostname}"])[0]
    message["To"] = ", ".join(recipients)
    message.set_content(text)
    client = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with client(parts.hostname or "localhost", parts.port or 25, timeout=timeout) as smtp:
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)

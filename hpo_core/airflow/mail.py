"""Mail alerts through the SMTP provider: its notifier and hook, reading the ``hpo_alerts``
connection the way sweepflow writes it (``smtp://`` with STARTTLS, ``smtps://``, ``to``,
``from``, ``cafile``, ``tls``), with sweepflow's rules on top: no password and no message leave
without verified TLS (a server that offers no STARTTLS gets neither), and ``tls: none`` is for a
local relay without a login. The SMTP provider (and aiosmtplib) load only when a mail is sent.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from functools import cached_property
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from hpo_core.airflow.hooks import CONN_ALERTS, AlertsHook
from hpo_core.pipeline.alerts import (
    AlertNotDelivered,
    MailSettings,
    check_mail_settings,
    no_starttls,
)

__all__ = ["AlertMailHook", "AlertMailNotifier"]


class AlertMailHook(SmtpHook):
    """The SMTP provider's hook on an ``hpo_alerts`` connection: where, how and to whom come
    from :func:`hpo_core.pipeline.alerts.check_mail_settings`, which refuses what would send a
    password in plain text."""

    def __init__(self, smtp_conn_id: str = CONN_ALERTS) -> None:
        super().__init__(smtp_conn_id=smtp_conn_id)

    @cached_property
    def mail(self) -> MailSettings:
        target = AlertsHook(self.smtp_conn_id).target()
        if target is None:
            raise AlertNotDelivered(f"connection {self.smtp_conn_id} is not defined")
        return check_mail_settings(target)

    def get_conn(self) -> SmtpHook:
        mail = self.mail  # checked before anything is sent
        try:
            return super().get_conn()
        except smtplib.SMTPNotSupportedError:  # STARTTLS refused: nothing was sent
            self._close()
            raise no_starttls(mail) from None
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._smtp_client is not None:
            try:
                self._smtp_client.close()
            finally:
                self._smtp_client = None

    def _build_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.mail.cafile)

    @property
    def host(self) -> str:
        return self.mail.host

    @property
    def port(self) -> int:
        return self.mail.port

    @property
    def smtp_user(self) -> str:
        return self.mail.user

    @property
    def smtp_password(self) -> str:
        return self.mail.password

    @property
    def use_ssl(self) -> bool:
        return self.mail.scheme == "smtps"

    @property
    def smtp_starttls(self) -> bool:
        return self.mail.starttls

    @property
    def from_email(self) -> str:
        return self.mail.sender

    @property
    def timeout(self) -> int:
        return int(self.conn.extra_dejson.get("timeout", 10))

    @property
    def smtp_retry_limit(self) -> int:
        return int(self.conn.extra_dejson.get("retry_limit", 1))

    @property
    def auth_type(self) -> str:
        return "basic"


class AlertMailNotifier(SmtpNotifier):
    """The SMTP provider's notifier, mailing one alert to the ``hpo_alerts`` connection's
    recipients as ``[sweepflow] <subject>``."""

    def __init__(self, *, subject: str, text: str, conn_id: str = CONN_ALERTS, **kwargs: Any):
        super().__init__(
            to=[],
            subject=f"[sweepflow] {subject}",
            html_content=f"<pre>{html.escape(text)}</pre>",
            smtp_conn_id=conn_id,
            **kwargs,
        )

    @cached_property
    def hook(self) -> AlertMailHook:
        return AlertMailHook(smtp_conn_id=self.smtp_conn_id)

    def notify(self, context: Any) -> None:
        mail = self.hook.mail
        self.to, self.from_email = mail.recipients, mail.sender
        super().notify(context)

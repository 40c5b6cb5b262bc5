"""Alerts from Airflow tasks and callbacks, through Airflow notifiers.

The ``hpo_alerts`` connection says where alerts go: a webhook goes through
:class:`WebhookNotifier`, mail through the SMTP provider's ``SmtpNotifier``
(:class:`hpo_core.airflow.mail.AlertMailNotifier`). :func:`alert` is what a task calls: it masks
URLs in the message, records the alert in the run's ``alerts.jsonl``, logs it when there is no
connection, and never fails the task (``hpo_core.pipeline.alerts.deliver_alert``).

The task's own alerts call the notifier's ``notify`` directly rather than the notifier itself:
calling it renders its fields as Jinja templates, and an alert's text quotes an exception, which
is data, not a template; it would also log a failure with the exception unmasked.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from hpo_core.airflow.hooks import CONN_ALERTS, AlertsHook, alert_target

__all__ = [
    "SweepAlertNotifier",
    "WebhookNotifier",
    "alert",
    "deadline_alert",
    "task_failure_alert",
]


class WebhookNotifier(BaseNotifier):
    """POSTs ``{"subject", "text"}`` as JSON to the webhook of an ``hpo_alerts`` connection
    (Slack-style incoming webhooks, Teams, a chat bot). Usable as any DAG's callback:
    ``on_failure_callback=WebhookNotifier(subject="{{ dag.dag_id }} failed", text="...")``."""

    template_fields = ("subject", "text")

    def __init__(
        self,
        *,
        subject: str,
        text: str,
        conn_id: str = CONN_ALERTS,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.text = text
        self.conn_id = conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        from hpo_core.pipeline.alerts import AlertNotDelivered, post_webhook

        target = AlertsHook(self.conn_id).target()
        if target is None:
            raise AlertNotDelivered(f"connection {self.conn_id} is not defined")
        post_webhook(target, self.subject, self.text, timeout=self.timeout)


def _notifier(target: str, subject: str, text: str) -> BaseNotifier:
    """The notifier for the ``hpo_alerts`` connection's kind of target."""
    from hpo_core.pipeline.alerts import SMTP_PORTS, parse_target

    if parse_target(target).scheme in SMTP_PORTS:
        from hpo_core.airflow.mail import AlertMailNotifier

        return AlertMailNotifier(subject=subject, text=text)
    return WebhookNotifier(subject=subject, text=text)


def alert(subject: str, text: str, *, run_dir: str | None = None) -> str:
    """Send one alert to the ``hpo_alerts`` connection (the log only without one), recorded in
    ``run_dir/alerts.jsonl``; returns where it went. Never raises."""
    from hpo_core.pipeline.alerts import deliver_alert

    target = alert_target()

    def send(subject: str, text: str) -> None:
        _notifier(str(target), subject, text).notify({})

    record = f"{run_dir}/alerts.jsonl" if run_dir else None
    return deliver_alert(subject, text, target=target, send=send, record=record)


class SweepAlertNotifier(BaseNotifier):
    """A failed task or run: who, where, and the log to read."""

    template_fields = ("subject",)

    def __init__(self, subject: str = "sweepflow: {{ dag.dag_id }} failed", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subject = subject

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        params = context.get("params") or {}
        exception = context.get("exception")
        where = f"task {ti.task_id}" if ti is not None else "the run"
        why = str(exception).splitlines()[0] if exception else "?"
        text = (
            f"{where} of run {getattr(dag_run, 'run_id', '?')} (config "
            f"{params.get('config', '?')}) failed: {why}"
        )
        run_dir = None
        if ti is not None:
            try:
                plan = ti.xcom_pull(task_ids="plan")
                run_dir = plan.get("run_dir") if isinstance(plan, dict) else None
            except Exception:
                run_dir = None
        alert(self.subject, text, run_dir=run_dir)


async def deadline_alert(hours: float, context: Any = None) -> None:
    """Deadline Alert callback (runs in the triggerer): a sweep run still going after ``hours``."""
    dag_run = (context or {}).get("dag_run") if isinstance(context, dict) else None
    alert(
        f"sweepflow: sweep run still running after {hours:g} h",
        f"run {getattr(dag_run, 'run_id', '?')} passed its deadline; check the workers' "
        "progress (`hpo status STUDY`) and the report of its last gate",
    )


def task_failure_alert(context: Any) -> None:
    """on_failure_callback for every task (after its last retry)."""
    SweepAlertNotifier(subject="sweepflow: a task failed").notify(context)

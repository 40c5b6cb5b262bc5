"""sweepflow's Airflow provider: installed with the wheel, found by Airflow through the
``apache_airflow_provider`` entry point (``airflow providers list`` shows ``sweepflow``).

- Hooks for the four connection types a deployment writes (:mod:`hpo_core.airflow.hooks`):
  ``hpo_storage`` (the Optuna storage), ``hpo_tracking`` (MLflow), ``hpo_alerts`` (a webhook or a
  mail server), ``hpo_kubernetes`` (the worker pods' settings and the maxima a run may ask for).
  Their UI forms are declared here, in :func:`get_provider_info`.
- The worker pod operator (:mod:`hpo_core.airflow.operators`).
- The people-in-the-loop operators (:mod:`hpo_core.airflow.hitl`): champion approval and gate
  override, on the standard provider's human-in-the-loop operator.
- Notifiers and callbacks (:mod:`hpo_core.airflow.notifications`): a webhook notifier, the failed
  task notifier, the deadline callback; mail goes through the SMTP provider's notifier
  (:mod:`hpo_core.airflow.mail`).

The top layer with the CLI: it calls ``hpo_core.pipeline``; nothing in hpo_core imports it.
Importing this package imports no Airflow module: Airflow calls :func:`get_provider_info` while
it lists providers, and the DAG files import the names below where a task runs.
"""

from __future__ import annotations

from typing import Any

from hpo_core._lazy import lazy_getattr

__all__ = [
    "ChampionApprovalOperator",
    "GateOverrideOperator",
    "SweepAlertNotifier",
    "SweepWorkerPodOperator",
    "WebhookNotifier",
    "alert",
    "alert_target",
    "deadline_alert",
    "get_provider_info",
    "pod_connection_extra",
    "storage_url",
    "task_failure_alert",
    "tracking_uri",
]

_HOOKS = "hpo_core.airflow.hooks"
_NOTIFICATIONS = "hpo_core.airflow.notifications"
__getattr__ = lazy_getattr(
    __name__,
    {
        "alert_target": _HOOKS,
        "pod_connection_extra": _HOOKS,
        "storage_url": _HOOKS,
        "tracking_uri": _HOOKS,
        "SweepWorkerPodOperator": "hpo_core.airflow.operators",
        "ChampionApprovalOperator": "hpo_core.airflow.hitl",
        "GateOverrideOperator": "hpo_core.airflow.hitl",
        "SweepAlertNotifier": _NOTIFICATIONS,
        "WebhookNotifier": _NOTIFICATIONS,
        "alert": _NOTIFICATIONS,
        "deadline_alert": _NOTIFICATIONS,
        "task_failure_alert": _NOTIFICATIONS,
    },
)


def _text(label: str, description: str | None = None, **schema: Any) -> dict[str, Any]:
    """One field of a connection form (Airflow's ``conn-fields``): stored in the extra."""
    field: dict[str, Any] = {"label": label, "schema": {"type": ["string", "null"], **schema}}
    if description:
        field["description"] = description
    return field


def _number(label: str, description: str | None = None, **schema: Any) -> dict[str, Any]:
    return {**_text(label, description), "schema": {"type": ["integer", "null"], **schema}}


def _connection_types() -> list[dict[str, Any]]:
    hooks = "hpo_core.airflow.hooks"
    return [
        {
            "connection-type": "hpo_storage",
            "hook-class-name": f"{hooks}.StorageHook",
            "hook-name": "sweepflow study storage",
            "conn-fields": {
                "sslmode": _text(
                    "SSL mode", "libpq sslmode, e.g. require or verify-full (empty: libpq's)"
                ),
                "journal": _text(
                    "Journal file",
                    "A journal file on a shared disk instead of PostgreSQL (absolute path)",
                ),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"schema": "Database", "login": "User"},
                "placeholders": {
                    "host": "postgres.sweepflow-data.svc",
                    "port": "5432",
                    "schema": "optuna",
                    "login": "hpo_worker",
                },
            },
        },
        {
            "connection-type": "hpo_tracking",
            "hook-class-name": f"{hooks}.TrackingHook",
            "hook-name": "sweepflow MLflow tracking",
            "conn-fields": {
                "scheme": _text("Scheme", enum=["https", "http", None], default="https"),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"schema": "Path", "login": "User (basic auth)"},
                "placeholders": {"host": "mlflow.sweepflow-data.svc", "port": "5000"},
            },
        },
        {
            "connection-type": "hpo_alerts",
            "hook-class-name": f"{hooks}.AlertsHook",
            "hook-name": "sweepflow alerts",
            "conn-fields": {
                "scheme": _text(
                    "Kind",
                    "https/http: a webhook (JSON POST); smtp: mail over STARTTLS; smtps: "
                    "mail over TLS",
                    enum=["https", "http", "smtp", "smtps", None],
                    default="https",
                ),
                "query": _text("Webhook query", "The webhook URL's query, e.g. key=...&token=..."),
                "to": _text("Mail to", "Recipients, comma-separated"),
                "from": _text("Mail from", "Sender (empty: sweepflow@<host>)"),
                "cafile": _text("CA file", "A PEM file of CAs that sign the mail server"),
                "tls": _text(
                    "Mail TLS",
                    "none: plain text to a local relay, only without a login",
                    enum=["starttls", "none", None],
                ),
                "timeout": _number("Mail timeout (s)", minimum=1),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"schema": "Webhook path"},
                "placeholders": {"host": "hooks.slack.com", "schema": "services/T000/B000/XXXX"},
            },
        },
        {
            "connection-type": "hpo_kubernetes",
            "hook-class-name": f"{hooks}.KubernetesSettingsHook",
            "hook-name": "sweepflow worker pods",
            "conn-fields": {
                "image": _text("Worker image", "repo:tag or repo@sha256:..."),
                "namespace": _text("Namespace"),
                "secret": _text("Secret", "Keys storage-url, tracking-uri (and optional ones)"),
                "service_account": _text("Service account"),
                "priority_class": _text("Priority class"),
                "checkpoint_claim": _text("Checkpoint volume claim (ReadWriteMany)"),
                "gpu_resource": _text("GPU resource", "nvidia.com/gpu or a MIG profile"),
                "gpus": _number("GPUs per worker", minimum=0),
                "max_gpus": _number("Most GPUs a run may ask for", minimum=0),
                "cpu": _text("CPU per worker"),
                "max_cpu": _text("Most CPU a run may ask for"),
                "memory": _text("Memory per worker"),
                "max_memory": _text("Most memory a run may ask for"),
                "termination_grace_seconds": _number("Termination grace (s)", minimum=0),
                "max_termination_grace_seconds": _number("Longest grace a spec may ask (s)"),
            },
            "ui-field-behaviour": {
                # node selector and tolerations (objects) stay in the extra's JSON
                "hidden-fields": ["host", "schema", "login", "password", "port"],
                "relabeling": {"extra": "More settings (JSON: node_selector, tolerations, ...)"},
                "placeholders": {},
            },
        },
    ]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads from the ``apache_airflow_provider`` entry point."""
    from hpo_core import __version__

    return {
        "package-name": "sweepflow",
        "name": "sweepflow",
        "description": "Hyperparameter sweeps: connection types for the study storage, MLflow "
        "tracking, alerts and worker pods; the worker pod operator; alert notifiers.",
        "versions": [__version__],
        "connection-types": _connection_types(),
        "notifications": [
            "hpo_core.airflow.notifications.WebhookNotifier",
            "hpo_core.airflow.notifications.SweepAlertNotifier",
            "hpo_core.airflow.mail.AlertMailNotifier",
        ],
    }

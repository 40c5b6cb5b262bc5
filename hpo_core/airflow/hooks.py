"""The four connections a sweepflow deployment writes, one hook each, and what a task reads from
them. Every reader falls back the way the CLI does: the connection, else the environment
(``HPO_STORAGE_URL``, ``MLFLOW_TRACKING_URI``), else the embedded defaults under ``$HPO_HOME``.
They run inside tasks, at run time; what they return never travels through XCom.

Each connection may be written two ways, and both read the same:

- as a URL or Airflow's JSON form with a standard type (``postgresql``, ``journal``, ``http``,
  ``smtp``, ``generic`` with a JSON extra): what ``AIRFLOW_CONN_HPO_*`` variables and the cluster
  kit's Secret hold;
- with the provider's own type (``hpo_storage``, ``hpo_tracking``, ``hpo_alerts``,
  ``hpo_kubernetes``), whose form in the UI labels each field (``get_provider_info``).

A password is always a field of its own: a URL these build for a process is never logged, and the
tracking server's login goes to the environment, not into the URI.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlunsplit

from airflow.sdk import BaseHook

__all__ = [
    "CONN_ALERTS",
    "CONN_KUBERNETES",
    "CONN_STORAGE",
    "CONN_TRACKING",
    "AlertsHook",
    "KubernetesSettingsHook",
    "StorageHook",
    "TrackingHook",
    "alert_target",
    "pod_connection_extra",
    "storage_url",
    "tracking_uri",
]

CONN_STORAGE = "hpo_storage"
CONN_TRACKING = "hpo_tracking"
CONN_ALERTS = "hpo_alerts"
CONN_KUBERNETES = "hpo_kubernetes"  # its extra (JSON): the worker pods' settings and maxima


class _SweepHook(BaseHook):
    """A hook that reads one connection and turns it into what sweepflow's steps take."""

    conn_name_attr = "conn_id"
    default_conn_name: str

    def __init__(self, conn_id: str | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name

    def connection(self) -> Any | None:
        """The connection, or None when it is not defined (the caller falls back)."""
        from airflow.sdk import Connection

        try:
            return Connection.get(self.conn_id)
        except Exception:  # not defined: fall back to the environment
            return None

    def extra(self, conn: Any) -> dict[str, Any]:
        """The extra as a mapping, the form's empty fields dropped (a blank field is unset)."""
        try:
            found = json.loads(conn.extra) if conn.extra else {}
        except ValueError:
            return {}
        if not isinstance(found, dict):
            return {}
        return {k: v for k, v in found.items() if v is not None and v != ""}


class StorageHook(_SweepHook):
    """``hpo_storage``: the Optuna storage (PostgreSQL, or a journal file on a shared disk)."""

    default_conn_name = CONN_STORAGE
    conn_type = CONN_STORAGE
    hook_name = "sweepflow study storage"

    def url(self) -> str:
        """The Optuna storage URL: the connection, else the environment, else the journal."""
        from hpo_core.storage import resolve_storage_url

        conn = self.connection()
        if conn is None:
            return resolve_storage_url(None)
        if conn.conn_type == CONN_STORAGE:
            return self._own_type_url(conn)
        uri = conn.get_uri()
        if uri.startswith("journal://"):
            # Airflow keeps a URI's path as the connection's schema and quotes it back ('/' as
            # %2F): unquoted, the journal is the file the URI named, not one in / named with %2F
            return unquote(uri)
        return _sqlalchemy_url(uri)

    def _own_type_url(self, conn: Any) -> str:
        from sqlalchemy.engine import URL

        extra = self.extra(conn)
        if extra.get("journal"):
            return f"journal://{extra['journal']}"
        query = {"sslmode": str(extra["sslmode"])} if extra.get("sslmode") else {}
        url = URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
            query=query,
        )
        return url.render_as_string(hide_password=False)


def _sqlalchemy_url(uri: str) -> str:
    """Airflow writes a PostgreSQL connection as ``postgres://``; SQLAlchemy wants a driver. The
    URI is parsed by SQLAlchemy (a password's '@', '/' or '%' stay percent-encoded as they came)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from hpo_core.storage import mask_url

    if uri.split("://", 1)[0] not in ("postgres", "postgresql"):
        return uri
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError):  # the message may quote a part of the password
        raise ValueError(
            f"connection {CONN_STORAGE}: {mask_url(uri)} is not a database URL; percent-encode "
            "any '/', '@', ':', '#', '?' or space in the password"
        ) from None
    return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


class TrackingHook(_SweepHook):
    """``hpo_tracking``: the MLflow tracking server (or a store URI such as ``sqlite:///...``)."""

    default_conn_name = CONN_TRACKING
    conn_type = CONN_TRACKING
    hook_name = "sweepflow MLflow tracking"

    def uri(self) -> str:
        """The MLflow tracking URI: the connection, else the environment, else the embedded
        store. A tracking server's login and password are put in ``MLFLOW_TRACKING_USERNAME`` /
        ``MLFLOW_TRACKING_PASSWORD`` of this task's process, where MLflow and the workers it
        starts read them, never in the URI that is stored and logged."""
        from hpo_core.tracking import resolve_tracking_uri

        conn = self.connection()
        if conn is None:
            return resolve_tracking_uri(None)
        scheme = conn.conn_type
        if scheme == CONN_TRACKING:
            scheme = str(self.extra(conn).get("scheme") or "https")
        if scheme not in ("http", "https"):
            return str(conn.get_uri())
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        port = f":{conn.port}" if conn.port else ""
        path = f"/{conn.schema}" if conn.schema else ""
        return f"{scheme}://{conn.host}{port}{path}"


class AlertsHook(_SweepHook):
    """``hpo_alerts``: where alerts go, a webhook (``http(s)``) or a mail server (``smtp``
    with STARTTLS, ``smtps``, or ``smtp`` with ``tls: none`` for a local relay without a login).
    Mail is sent by the SMTP provider's notifier (:mod:`hpo_core.airflow.mail`)."""

    default_conn_name = CONN_ALERTS
    conn_type = CONN_ALERTS
    hook_name = "sweepflow alerts"

    def target(self) -> str | None:
        """The alert target as one URL (held in this process only: it is shown masked)."""
        conn = self.connection()
        if conn is None:
            return None
        extra = self.extra(conn)
        scheme = conn.conn_type
        if scheme == CONN_ALERTS:
            scheme = str(extra.pop("scheme", "https"))
            query = str(extra.pop("query", ""))
            extra = {k: v for k, v in extra.items() if k in ("to", "from", "cafile", "tls")}
            return _url(scheme, conn, query if scheme in ("http", "https") else _mail_query(extra))
        if scheme in ("http", "https"):
            # get_uri() escapes the slashes of a webhook's path (`services%2Fabc`), and Airflow
            # keeps a URI's query (`?key=..&token=..` of a Google Chat webhook) as the extra
            return _url(scheme, conn, urlencode(extra))
        if scheme in ("smtp", "smtps"):
            return _url(scheme, conn, _mail_query(extra))
        return str(conn.get_uri())


def _mail_query(extra: dict[str, Any]) -> str:
    """A mail target's settings as the query the alert is shown with, readable
    (``to=ops@example.org``, ``cafile=/etc/ssl/ca.pem``)."""
    return urlencode(extra, safe="@,/")


def _url(scheme: str, conn: Any, query: str) -> str:
    netloc = str(conn.host) + (f":{conn.port}" if conn.port else "")
    if conn.login:
        login = f"{quote(conn.login, safe='')}:{quote(conn.password or '', safe='')}"
        netloc = f"{login}@{netloc}"
    path = "/" + quote(conn.schema, safe="/:@!$&'()*+,;=~") if conn.schema else ""
    return urlunsplit((scheme, netloc, path, query, ""))


class KubernetesSettingsHook(_SweepHook):
    """``hpo_kubernetes``: the worker pods' settings and the maxima a run may ask for (checked
    by ``hpo_core.pipeline.pod_settings``). The cluster itself is the cncf.kubernetes
    provider's ``kubernetes_default`` connection, or the in-cluster service account."""

    default_conn_name = CONN_KUBERNETES
    conn_type = CONN_KUBERNETES
    hook_name = "sweepflow worker pods"

    def settings_text(self) -> str | None:
        """The extra as JSON text, None when there is no such connection. Only deployment
        managers write connections, so image, namespace, Secret and the maxima of a run's
        request come from here. Not ``extra_dejson``: it logs a malformed extra and returns {},
        and pods would then run with the defaults instead of the deployment's image."""
        conn = self.connection()
        if conn is None:
            return None
        text = str(conn.extra or "")
        if conn.conn_type == CONN_KUBERNETES:
            try:  # the form writes a field left blank as null or "": unset, not a bad value
                found = json.loads(text) if text.strip() else {}
            except ValueError:
                return text  # pod_settings names the problem
            if isinstance(found, dict):
                return json.dumps(self.extra(conn))
        return text


def storage_url() -> str:
    """The Optuna storage URL of connection ``hpo_storage`` (see :class:`StorageHook`)."""
    return StorageHook().url()


def tracking_uri() -> str:
    """The MLflow tracking URI of connection ``hpo_tracking`` (see :class:`TrackingHook`)."""
    return TrackingHook().uri()


def alert_target() -> str | None:
    """The ``hpo_alerts`` connection as one URL, None without one (see :class:`AlertsHook`)."""
    return AlertsHook().target()


def pod_connection_extra() -> str | None:
    """The ``hpo_kubernetes`` connection's extra (see :class:`KubernetesSettingsHook`)."""
    return KubernetesSettingsHook().settings_text()

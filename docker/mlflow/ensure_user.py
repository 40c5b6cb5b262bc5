"""Make the MLflow account that Airflow tasks and workers log with exist, with .env's password.

Run by the compose service `mlflow-init` once the tracking server is up: signed in as the admin
(MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD), it creates the non-admin account
MLFLOW_TRACKING_USERNAME with MLFLOW_TRACKING_PASSWORD, or sets that password if the account
exists, so .env stays the one place the password is changed. The account is a plain user: it
reads what every user reads (default_permission) and manages the experiments and models it creates.

Talks to the basic-auth app's REST API with `requests` (an MLflow dependency) rather than
`mlflow.server.auth.client`, whose import pulls in the whole server and takes seconds. Errors are
one `error:` line naming the setting to fix; passwords are never printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import requests

USERS = "/api/2.0/mlflow/users"
TIMEOUT = 30


class SetupError(Exception):
    """A problem the operator fixes in .env or on the server; the message is the whole story."""


def _call(session: requests.Session, method: str, url: str, **kwargs: object) -> requests.Response:
    try:
        reply = session.request(method, url, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        raise SetupError(
            f"MLFLOW_TRACKING_URI: cannot reach the server ({type(exc).__name__})"
        ) from None
    if reply.status_code == 401:
        raise SetupError(
            "MLFLOW_AUTH_ADMIN_PASSWORD: the server refused the admin login; it must be the "
            "admin's current password (after changing it in MLflow, change it in .env too)"
        )
    if reply.status_code == 403:
        raise SetupError(
            "MLFLOW_AUTH_ADMIN_USERNAME: that account is not an MLflow admin; name the admin"
        )
    return reply


def ensure_user(env: Mapping[str, str]) -> str:
    """Create or re-key the tracking account; returns what was done, for the log line."""
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ):
        if not env.get(name):
            raise SetupError(f"{name}: not set; set it in .env")
    admin = env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
    username = env["MLFLOW_TRACKING_USERNAME"]
    password = env["MLFLOW_TRACKING_PASSWORD"]
    if username == admin:
        raise SetupError(
            "MLFLOW_TRACKING_USERNAME: must not be the admin account; tasks and workers log "
            "with a plain user (e.g. sweepflow)"
        )
    base = env["MLFLOW_TRACKING_URI"].rstrip("/") + USERS
    with requests.Session() as session:
        session.auth = (admin, env["MLFLOW_AUTH_ADMIN_PASSWORD"])
        found = _call(session, "GET", f"{base}/get", params={"username": username})
        if found.status_code == 404:
            action = "created"
            reply = _call(
                session, "POST", f"{base}/create", json={"username": username, "password": password}
            )
        elif found.ok:
            if found.json()["user"].get("is_admin"):
                raise SetupError(
                    f"MLFLOW_TRACKING_USERNAME: {username!r} is an MLflow admin; tasks and "
                    "workers need a plain user (revoke its admin flag or name another account)"
                )
            action = "password set from .env"
            reply = _call(
                session,
                "PATCH",
                f"{base}/update-password",
                json={"username": username, "password": password},
            )
        else:
            reply = found
        if not reply.ok:
            # the server's message (e.g. the password policy) names the problem; it has no secret
            try:
                message = reply.json().get("message", reply.reason)
            except ValueError:
                message = reply.reason
            raise SetupError(
                f"MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD: the server refused "
                f"account {username!r}: {message}"
            )
    return f"mlflow-init: account {username!r} {action}"


def main() -> int:
    try:
        print(ensure_user(os.environ))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

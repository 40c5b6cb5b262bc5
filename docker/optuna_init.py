"""Create (or upgrade) Optuna's tables in the stack's study database as hpo_owner, then exit.

Run by the compose service `optuna-init` before any worker or the dashboard starts: the roles
they connect with (hpo_worker: rows only, hpo_reader: SELECT only) cannot CREATE or ALTER a table,
so the schema, its alembic_version row included, must exist first. Optuna's RDBStorage does the
work: its create_all skips tables that exist and upgrade() is a no-op at the head revision, so
running this on every `up` is safe, and after an Optuna upgrade in constraints.txt it migrates the
schema once, as the owner. With the schema in place, a worker's RDBStorage only reads the catalog
and the version tables when it connects.

The URL (with the password) comes from HPO_OWNER_STORAGE_URL, never an argument. A failure is one
`error:` line; SQLAlchemy's messages carry the host and role, not the password.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> int:
    url = os.environ.get("HPO_OWNER_STORAGE_URL")
    if not url:
        print("error: HPO_OWNER_STORAGE_URL: not set; set it for optuna-init", file=sys.stderr)
        return 1
    # a root handler stops Optuna's alembic env.py from installing alembic's INFO logging
    logging.basicConfig(level=logging.WARNING, format="optuna-init: %(message)s")
    import optuna

    try:
        storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
        storage.upgrade()
        revision = storage.get_current_version()
    except Exception as exc:  # sqlalchemy/psycopg2/alembic raise many types; all mean "failed"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: optuna-init: {reason}", file=sys.stderr)
        return 1
    print(f"optuna-init: Optuna's tables are at schema revision {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Creates the stack's roles and databases (init-databases.sql says which and why); run once by the
# postgres image's entrypoint (docker-entrypoint-initdb.d) when the data volume is empty. To re-run
# it, remove the volume: `docker-compose down -v` (deletes all data).
#
# The SQL is a file of its own so the tests run exactly what the image runs. It is mounted outside
# docker-entrypoint-initdb.d (the entrypoint would run a .sql file there without the passwords);
# SWEEPFLOW_INIT_SQL points elsewhere, for the tests.
set -euo pipefail

missing=()
for variable in AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD HPO_OWNER_DB_PASSWORD \
    HPO_WORKER_DB_PASSWORD HPO_READER_DB_PASSWORD; do
  [[ -n "${!variable:-}" ]] || missing+=("$variable")
done
if ((${#missing[@]})); then
  echo "error: init-databases: ${missing[*]} not set; set them in .env" >&2
  exit 1
fi

# The entrypoint's temporary server listens on the local socket only; PG* variables (if set)
# point psql at another server, which the tests use.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" \
  --dbname postgres --file "${SWEEPFLOW_INIT_SQL:-/opt/sweepflow/init-databases.sql}"

echo "init-databases: databases airflow, mlflow, mlflow_auth, optuna;" \
  "roles airflow, mlflow, hpo_owner, hpo_worker, hpo_reader"

#!/usr/bin/env bash
# One PostgreSQL server, three databases, one role each; run once by the postgres image's
# entrypoint (docker-entrypoint-initdb.d) when the data volume is empty. To re-run it, remove the
# volume: `docker-compose down -v`.
#
#   airflow  owned by role airflow    (Airflow's metadata; `airflow db migrate` creates the tables)
#   mlflow   owned by role mlflow     (MLflow's tracking and registry store)
#   optuna   owned by the superuser;  role hpo_worker may connect and create/read/write tables in
#            its public schema, nothing else: workers run on shared GPU nodes, so the credential
#            they carry must not reach Airflow's or MLflow's data, nor drop the study database.
#
# Passwords come from the container's environment (set from .env by docker-compose.yaml). psql
# reads them with \getenv and quotes them with :'var', so they never appear on a command line
# (visible in `ps`) nor need escaping.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${HPO_DB_PASSWORD:?set HPO_DB_PASSWORD}"

# The entrypoint's temporary server listens on the local socket only; PG* variables (if set)
# point psql at it, which also lets this script be tested against any server.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv airflow_pw AIRFLOW_DB_PASSWORD
\getenv mlflow_pw MLFLOW_DB_PASSWORD
\getenv hpo_pw HPO_DB_PASSWORD

CREATE ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_pw';
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_pw';
CREATE ROLE hpo_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_pw';

-- Owning its database makes each service able to run its own schema migrations; since
-- PostgreSQL 15 the public schema belongs to the database owner, so no schema grant is needed.
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE optuna;

-- PUBLIC may connect to every database by default: close that, then open exactly one door each.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE optuna FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE optuna TO hpo_worker;
SQL

# Schema privileges are per database, so they are granted while connected to optuna. Tables the
# worker creates (Optuna's schema) are its own, hence read/write without further grants.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname optuna <<'SQL'
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO hpo_worker;
SQL

echo "init-databases: created databases airflow, mlflow, optuna and roles airflow, mlflow, hpo_worker"

-- Roles and databases of the compose stack's PostgreSQL, run once by init-databases.sh when the
-- data volume is empty (tests/docker/test_postgres_roles.py runs this same file).
--
--   airflow      owns database airflow       Airflow's metadata; `airflow db migrate` makes tables
--   mlflow       owns databases mlflow and   MLflow's tracking/registry store and the basic-auth
--                mlflow_auth                 app's users and permissions
--   hpo_owner    owns database optuna and    creates and upgrades Optuna's tables (the optuna-init
--                its schema public           service, once per start); nothing else uses it
--   hpo_worker   optuna: rows only           workers and Airflow tasks: SELECT, INSERT, UPDATE,
--                                            DELETE on Optuna's tables, nextval on its sequences;
--                                            no CREATE, DROP, ALTER or TRUNCATE (not the owner)
--   hpo_reader   optuna: SELECT only         optuna-dashboard, people browsing studies
--
-- Workers run on shared GPU nodes, so the credential they carry reaches neither Airflow's nor
-- MLflow's data and cannot drop or reshape the study database; the dashboard faces a browser,
-- so its credential cannot change a study at all.
--
-- Passwords come from the environment through \getenv and are quoted with :'var', so they never
-- appear on a command line (visible in `ps`) nor need escaping.

\set ON_ERROR_STOP on
\getenv airflow_pw AIRFLOW_DB_PASSWORD
\getenv mlflow_pw MLFLOW_DB_PASSWORD
\getenv hpo_owner_pw HPO_OWNER_DB_PASSWORD
\getenv hpo_worker_pw HPO_WORKER_DB_PASSWORD
\getenv hpo_reader_pw HPO_READER_DB_PASSWORD

CREATE ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_pw';
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_pw';
CREATE ROLE hpo_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_owner_pw';
CREATE ROLE hpo_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_worker_pw';
CREATE ROLE hpo_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_reader_pw';

-- Owning its database lets each service run its own schema migrations.
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE optuna OWNER hpo_owner;

-- PUBLIC may connect to every database by default: close that, then open exactly the doors needed.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
REVOKE ALL ON DATABASE optuna FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE optuna TO hpo_worker, hpo_reader;

-- Schema and default privileges are per database.
\connect optuna
ALTER SCHEMA public OWNER TO hpo_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO hpo_worker, hpo_reader;
-- Optuna's tables do not exist yet (optuna-init creates them as hpo_owner); default privileges
-- cover them and every table a later `optuna storage upgrade` adds. USAGE on a sequence is what
-- nextval() needs; UPDATE would also allow setval(), which could make ids collide.
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hpo_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO hpo_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO hpo_reader;

-- For a PostgreSQL volume created before hpo_owner and hpo_reader existed (when hpo_worker owned
-- Optuna's tables): brings it to what init-databases.sql sets up, keeping the data. Run once, as
-- the superuser, after updating .env and `docker-compose up -d postgres` (docker/README.md: Database roles):
--   docker-compose exec -T postgres psql -U postgres -v ON_ERROR_STOP=1 -f - < docker/postgres/upgrade-roles.sql
-- Checked by hand against a volume made by the previous script; not part of the test suite.

\set ON_ERROR_STOP on
\getenv hpo_owner_pw HPO_OWNER_DB_PASSWORD
\getenv hpo_reader_pw HPO_READER_DB_PASSWORD

CREATE ROLE hpo_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_owner_pw';
CREATE ROLE hpo_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'hpo_reader_pw';
CREATE DATABASE mlflow_auth OWNER mlflow;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
ALTER DATABASE optuna OWNER TO hpo_owner;
REVOKE TEMPORARY ON DATABASE optuna FROM hpo_worker;
GRANT CONNECT ON DATABASE optuna TO hpo_reader;

\connect optuna
-- the tables and sequences hpo_worker created become the owner's
REASSIGN OWNED BY hpo_worker TO hpo_owner;
REVOKE CREATE ON SCHEMA public FROM hpo_worker;
ALTER SCHEMA public OWNER TO hpo_owner;
GRANT USAGE ON SCHEMA public TO hpo_reader;
-- default privileges cover tables created from now on; these, the existing ones
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hpo_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO hpo_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO hpo_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hpo_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO hpo_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE hpo_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO hpo_reader;

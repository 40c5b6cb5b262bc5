"""The compose stack and the Dockerfiles, checked without a Docker engine.

`docker-compose config` validates and renders docker-compose.yaml with the placeholder values of
.env.example (the same interpolation `up` does); the rest reads the files themselves: secrets only
as ${...} references, never on a command line, non-root images, no torch in the Airflow image,
MLflow with authentication, each database role used where it belongs, and the preflight service
that stops the stack while a change-me placeholder is left (its script run here for real). What the
roles can do is checked on a real server in test_postgres_roles.py, the MLflow server in
test_mlflow_auth.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER = ROOT / "docker"

EXPECTED_SERVICES = {
    "preflight",
    "postgres",
    "optuna-init",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "mlflow",
    "mlflow-init",
    "optuna-dashboard",
}
# run once and exit: no healthcheck; the others wait for them to complete
ONE_SHOT = {"preflight", "optuna-init", "airflow-init", "mlflow-init"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$")
# `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and friends, and nothing else
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}")
# the password part of scheme://user:password@host
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:(?P<password>\$\{[^}]*\}|[^@\s]*)@")


def env_example() -> dict[str, str]:
    """Every variable .env.example names, the optional commented-out ones included."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def is_secret(name: str) -> bool:
    # a *_FILE variable holds the path of a secret, not the secret
    return bool(SECRET_NAME.search(name)) and not name.endswith("_FILE")


def secret_values() -> dict[str, str]:
    return {name: value for name, value in env_example().items() if is_secret(name)}


def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def environments(compose: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(owner, environment mapping) for every service and x- extension block."""
    owners = dict(compose.get("services", {}))
    owners.update({k: v for k, v in compose.items() if k.startswith("x-")})
    found = []
    for owner, block in owners.items():
        env = block.get("environment") or {}
        if isinstance(env, list):  # the `- KEY=value` form
            env = dict(item.split("=", 1) for item in env)
        found.append((owner, env))
    return found


def commands(compose: dict[str, Any]) -> list[tuple[str, str]]:
    """(service.key, text) of every command, entrypoint and healthcheck test."""
    found = []
    for name, service in compose.get("services", {}).items():
        for key in ("command", "entrypoint"):
            if key in service:
                found.append((f"{name}.{key}", str(service[key])))
        if "healthcheck" in service and "test" in service["healthcheck"]:
            found.append((f"{name}.healthcheck", str(service["healthcheck"]["test"])))
    return found


def mount_targets(service: dict[str, Any]) -> list[str]:
    """Where a service's volumes are mounted (compose v1 renders `source:target:mode` strings,
    v2 mappings)."""
    return [
        v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service.get("volumes", [])
    ]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            pending = ""
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """docker-compose.yaml as `docker-compose config` renders it with .env.example."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (`make system-deps` installs it)")
    # Values from the caller's shell would win over --env-file and hide a missing variable.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in env_example() and not k.startswith("COMPOSE_")
    }
    result = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # a variable used without a default and missing from .env.example renders as empty
    assert "is not set" not in result.stderr, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def test_compose_config_renders_every_service(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    assert set(services) >= EXPECTED_SERVICES, sorted(services)
    for name in EXPECTED_SERVICES - ONE_SHOT:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", f"{name} must run once, not restart"


def test_compose_wires_airflow_to_its_stores(rendered: dict[str, Any]) -> None:
    secrets = secret_values()
    env = rendered["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["AIRFLOW_CONN_HPO_STORAGE"] == (
        f"postgresql+psycopg2://hpo_worker:{secrets['HPO_WORKER_DB_PASSWORD']}@postgres:5432/optuna"
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow:{secrets['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow"
    )
    mlflow_env = rendered["services"]["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg2://mlflow:{secrets['MLFLOW_DB_PASSWORD']}@postgres:5432/mlflow"
    )


def test_the_triggerer_watches_the_pods_the_scheduler_starts(rendered: dict[str, Any]) -> None:
    """Worker pods are deferrable: a task (in the scheduler, with the LocalExecutor) creates the
    pod and the triggerer watches it, so both reach the same cluster with the same settings."""
    services = rendered["services"]
    triggerer, scheduler = services["airflow-triggerer"], services["airflow-scheduler"]
    assert triggerer["command"] == ["triggerer"]
    assert "healthcheck" in triggerer
    assert triggerer["environment"] == scheduler["environment"]
    for key in ("AIRFLOW_CONN_HPO_KUBERNETES", "AIRFLOW_CONN_KUBERNETES_DEFAULT"):
        assert scheduler["environment"][key] == "", key  # optional, and empty in .env.example
    for key, condition in (("airflow-init", "completed_successfully"), ("airflow-api-server", "healthy")):
        assert triggerer["depends_on"][key]["condition"] == f"service_{condition}"


def test_compose_requires_every_secret_from_env_file() -> None:
    """Secrets are ${VAR:?...} references: a missing .env stops compose instead of running
    with an empty password."""
    compose = raw_compose()
    for owner, env in environments(compose):
        for name, value in env.items():
            text = str(value)
            if is_secret(name):
                assert REFERENCE.fullmatch(text), (
                    f"{owner}.{name} is not a ${{...}} reference: {text!r}"
                )
                assert ":?" in text, (
                    f"{owner}.{name} must fail loudly when unset: use ${{{name}:?...}}"
                )
    # passwords inside URLs too (a ${VAR:-default} would be a literal fallback password),
    # anywhere in the file, comments included
    for match in URL_PASSWORD.finditer(COMPOSE_FILE.read_text()):
        password = match["password"]
        assert REFERENCE.fullmatch(password) and ":?" in password, (
            f"a URL in docker-compose.yaml has a password that is not ${{VAR:?...}}: {match[0]}"
        )


def test_no_password_on_a_command_line_in_the_file() -> None:
    """Arguments are visible to anyone who can run `ps`; secrets go through the environment."""
    secrets = [value for value in secret_values().values() if value]
    assert secrets, ".env.example lists no secrets"
    raw_text = COMPOSE_FILE.read_text()
    for value in secrets:
        assert value not in raw_text, (
            f"the placeholder {value!r} is written into docker-compose.yaml"
        )
    for where, text in commands(raw_compose()):
        assert "${" not in text, f"{where} interpolates a variable into its arguments: {text}"


def test_no_password_on_a_rendered_command_line(rendered: dict[str, Any]) -> None:
    """The same after interpolation, which is what the containers get."""
    for where, text in commands(rendered):
        for name, value in secret_values().items():
            assert value not in text, f"{where} carries {name} on its command line"


def test_env_file_stays_out_of_git_and_images() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
    for name, value in secret_values().items():
        assert "change-me" in value, f".env.example: {name} must be an obvious placeholder"


def test_postgres_init_reads_passwords_from_environment(rendered: dict[str, Any]) -> None:
    assert os.access(DOCKER / "postgres" / "init-databases.sh", os.X_OK), (
        "the entrypoint sources a non-executable script"
    )
    sql = (DOCKER / "postgres" / "init-databases.sql").read_text()
    read = set(re.findall(r"^\\getenv \w+ (\w+)$", sql, re.MULTILINE))
    # every password the SQL reads is one compose gives the postgres container
    assert read == set(rendered["services"]["postgres"]["environment"]) - {"POSTGRES_PASSWORD"}
    # every PASSWORD clause takes a psql variable, never a literal
    clauses = re.findall(r"PASSWORD\s+(\S+);", sql)
    assert len(clauses) == len(read) and all(c.startswith(":'") for c in clauses), clauses
    # the SQL file is mounted where the script reads it, outside initdb.d (which would run it
    # without the passwords)
    targets = mount_targets(rendered["services"]["postgres"])
    assert "/opt/sweepflow/init-databases.sql" in targets
    assert "/opt/sweepflow/init-databases.sql" in (DOCKER / "postgres" / "init-databases.sh").read_text()
    assert not any(t.startswith("/docker-entrypoint-initdb.d/") and t.endswith(".sql") for t in targets)


def test_each_optuna_role_is_used_where_it_belongs(rendered: dict[str, Any]) -> None:
    """hpo_owner only creates the schema; workers and tasks are hpo_worker, which owns nothing;
    the dashboard, facing a browser, reads as hpo_reader."""
    services = rendered["services"]
    users = {}
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if isinstance(value, str) and "@postgres:5432/optuna" in value:
                users[f"{name}.{key}"] = make_url(value).username
    assert users == {
        "optuna-init.HPO_OWNER_STORAGE_URL": "hpo_owner",
        "airflow-init.AIRFLOW_CONN_HPO_STORAGE": "hpo_worker",
        "airflow-api-server.AIRFLOW_CONN_HPO_STORAGE": "hpo_worker",
        "airflow-scheduler.AIRFLOW_CONN_HPO_STORAGE": "hpo_worker",
        "airflow-dag-processor.AIRFLOW_CONN_HPO_STORAGE": "hpo_worker",
        "airflow-triggerer.AIRFLOW_CONN_HPO_STORAGE": "hpo_worker",
        "hpo-worker.HPO_STORAGE_URL": "hpo_worker",
        "optuna-dashboard.HPO_STORAGE_URL": "hpo_reader",
    }
    sql = (DOCKER / "postgres" / "init-databases.sql").read_text()
    assert "CREATE DATABASE optuna OWNER hpo_owner;" in sql
    assert "ALTER SCHEMA public OWNER TO hpo_owner;" in sql
    # nothing makes the worker or the reader an owner, or a member of the owner's role
    assert not re.search(r"OWNER (TO )?hpo_(worker|reader)|GRANT hpo_owner TO", sql)
    # the workers and the dashboard start once optuna-init has made the tables
    for name in ("airflow-scheduler", "hpo-worker", "optuna-dashboard"):
        condition = services[name]["depends_on"]["optuna-init"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["optuna-init"]["command"] == ["python", "/opt/sweepflow/optuna_init.py"]


def test_mlflow_runs_with_authentication(rendered: dict[str, Any]) -> None:
    secrets = secret_values()
    services = rendered["services"]
    mlflow = services["mlflow"]
    # the image's CMD starts the basic-auth app, and compose does not replace it
    assert "command" not in mlflow and "entrypoint" not in mlflow
    instructions = final_stage(dockerfile_instructions(DOCKER / "Dockerfile.mlflow"))
    cmd = json.loads(next(args for keyword, args in instructions if keyword == "CMD"))
    assert cmd[:2] == ["mlflow", "server"] and cmd[cmd.index("--app-name") + 1] == "basic-auth"
    env_lines = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini" in env_lines
    assert ("COPY", "docker/mlflow/basic_auth.ini /etc/mlflow/basic_auth.ini") in instructions
    assert any(k == "RUN" and '"mlflow[auth]"' in args for k, args in instructions)
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == secrets["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == secrets["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    # basic_auth.ini's database_uri has no password; libpq takes this one
    assert env["PGPASSWORD"] == secrets["MLFLOW_DB_PASSWORD"]
    # tasks and workers log as the plain account, credentials in the environment, not the URL
    for name in ("airflow-scheduler", "hpo-worker"):
        task_env = services[name]["environment"]
        assert task_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert task_env["MLFLOW_TRACKING_USERNAME"] == env_example()["MLFLOW_TRACKING_USERNAME"]
        assert task_env["MLFLOW_TRACKING_PASSWORD"] == secrets["MLFLOW_TRACKING_PASSWORD"]
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in task_env, f"{name} holds the MLflow admin's"
        condition = services[name]["depends_on"]["mlflow-init"]["condition"]
        assert condition == "service_completed_successfully", name
    assert env_example()["MLFLOW_TRACKING_USERNAME"] != env_example()["MLFLOW_AUTH_ADMIN_USERNAME"]
    init = services["mlflow-init"]
    assert init["command"] == ["python", "/opt/sweepflow/ensure_user.py"]
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_every_service_waits_for_preflight(rendered: dict[str, Any]) -> None:
    for name, service in rendered["services"].items():
        if name == "preflight":
            continue
        condition = service.get("depends_on", {}).get("preflight", {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} does not wait for preflight"


def test_preflight_sees_every_placeholder_and_nothing_else(rendered: dict[str, Any]) -> None:
    preflight = rendered["services"]["preflight"]
    placeholders = {name for name, value in env_example().items() if "change-me" in value}
    assert placeholders <= set(preflight["environment"]), placeholders - set(preflight["environment"])
    # it holds every secret, so it gets nothing else: no network, no privileges, no writes
    assert preflight["network_mode"] == "none" and preflight["read_only"] is True
    assert preflight["user"] == "65534:65534" and preflight["cap_drop"] == ["ALL"]
    assert mount_targets(preflight) == ["/opt/sweepflow/preflight.sh"]


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DOCKER / "preflight.sh")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_preflight_refuses_placeholders_in_one_line(rendered: dict[str, Any]) -> None:
    """The script with what compose hands it from .env.example, then with real-looking values."""
    env = {k: str(v) for k, v in rendered["services"]["preflight"]["environment"].items()}
    refused = _preflight(env)
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    named = sorted(k for k, v in env.items() if "change-me" in v)
    assert line == (
        f"error: .env: {', '.join(named)} still set to a change-me placeholder; "
        "replace each value (see .env.example)"
    )
    required = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "change-me" in line and not line.startswith("#")
    }
    assert set(named) == required
    for value in env.values():
        assert not value or value not in line, "preflight printed a value"
    # one left behind, even in an optional setting, is named alone
    fixed = {k: v.replace("change-me", "0f3a9c") for k, v in env.items()}
    alerts = env_example()["AIRFLOW_CONN_HPO_ALERTS"]
    one_left = _preflight({**fixed, "AIRFLOW_CONN_HPO_ALERTS": alerts})
    assert one_left.returncode == 1
    assert one_left.stderr.startswith("error: .env: AIRFLOW_CONN_HPO_ALERTS still set to a change-me")
    passed = _preflight(fixed)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == "preflight: no change-me placeholder left\n"


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in DOCKER.glob("Dockerfile.*")))
def test_images_run_as_non_root(dockerfile: str) -> None:
    users = [
        args
        for keyword, args in final_stage(dockerfile_instructions(DOCKER / dockerfile))
        if keyword == "USER"
    ]
    assert users, f"{dockerfile}: the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{dockerfile} runs as {users[-1]}"


def test_worker_image_is_the_batch_worker() -> None:
    instructions = final_stage(dockerfile_instructions(DOCKER / "Dockerfile.worker"))
    args = {keyword: value for keyword, value in instructions}
    assert args["ENTRYPOINT"] == '["hpo"]'
    assert args["USER"].split(":")[0] == "10001"
    env = " ".join(value for keyword, value in instructions if keyword == "ENV")
    assert "HPO_HOME=/tmp/hpo" in env
    assert "MLFLOW_DISABLE_TELEMETRY=true" in env


def test_airflow_image_does_not_install_torch() -> None:
    """DAG files are parsed every few seconds: the Airflow image must not need torch."""
    for keyword, args in dockerfile_instructions(DOCKER / "Dockerfile.airflow"):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            if "pip install" not in command:
                continue
            assert "torch" not in command, command
            for extras in re.findall(r"\[([a-z0-9_,\s-]+)\]", command):
                names = {e.strip() for e in extras.split(",")}
                assert not names & {"arc", "torch"}, f"extras [{extras}] pull torch"

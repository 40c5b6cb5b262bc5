"""Trial checkpoints in Optuna's artifact store: round trips, re-queued trials, clean-up."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpo_core.errors import StorageError
from hpo_core.worker.checkpoints import TrialCheckpoints, _AtomicFileStore
from hpo_core.worker.lost import ATTR_CHECKPOINT, lose_trial
from tests.helpers import base_spec, run_hpo


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "studies.journal")))
    return optuna.create_study(study_name="ckpt", storage=storage, direction="maximize")


@pytest.fixture
def store(tmp_path: Path) -> TrialCheckpoints:
    return TrialCheckpoints(tmp_path / "artifacts" / "ckpt", every=1, keep=0)


def _files(store: TrialCheckpoints) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir())


def _state(epoch: int) -> dict[str, object]:
    return {"epoch": epoch, "weights": torch.full((3,), float(epoch)), "history": [0.1, 0.2]}


def test_a_state_round_trips_and_the_trial_points_at_it(
    study: optuna.Study, store: TrialCheckpoints
) -> None:
    trial = study.ask()
    assert store.load(trial) is None
    store.save(trial, _state(1))
    pointer = trial.user_attrs[ATTR_CHECKPOINT]
    assert pointer == {"epoch": 1, "artifact_id": pointer["artifact_id"], "origin": 0}
    assert _files(store) == [pointer["artifact_id"]]  # one complete file, no partial one
    loaded = store.load(trial)
    assert loaded is not None and loaded["epoch"] == 1 and loaded["history"] == [0.1, 0.2]
    assert torch.equal(loaded["weights"], torch.full((3,), 1.0))
    store.save(trial, _state(2))  # replaces the first
    assert _files(store) == [trial.user_attrs[ATTR_CHECKPOINT]["artifact_id"]]


def test_a_requeued_trial_loads_its_parents_checkpoint_and_replaces_it(
    study: optuna.Study, store: TrialCheckpoints
) -> None:
    parent = study.ask()
    store.save(parent, _state(3))
    lose_trial(study, parent._trial_id, "preempted: SIGTERM", max_retry=None)
    copy = study.ask()
    assert copy.number == 1
    loaded = store.load(copy)
    assert loaded is not None and loaded["epoch"] == 3
    store.save(copy, _state(4))
    pointer = copy.user_attrs[ATTR_CHECKPOINT]
    assert pointer["origin"] == 0 and _files(store) == [pointer["artifact_id"]]


def test_a_state_that_would_unpickle_code_is_refused(
    study: optuna.Study, store: TrialCheckpoints
) -> None:
    trial = study.ask()
    store.save(trial, {"epoch": 1, "object": logging.getLogger("x")})  # not tensors or plain data
    with pytest.raises(RuntimeError, match="cannot be loaded with weights_only=True"):
        store.load(trial)


def test_a_missing_or_forged_checkpoint_is_no_checkpoint(
    study: optuna.Study, store: TrialCheckpoints, caplog: pytest.LogCaptureFixture
) -> None:
    trial = study.ask()
    trial.set_user_attr(ATTR_CHECKPOINT, {"epoch": 2, "artifact_id": "../../x", "origin": 0})
    assert store.load(trial) is None
    trial.set_user_attr(
        ATTR_CHECKPOINT, {"epoch": 2, "artifact_id": str(uuid.uuid4()), "origin": 0}
    )
    assert store.load(trial) is None
    assert "is not in" in caplog.text and "training from the start" in caplog.text


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    class Breaks(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("disk full")
            return super().read(4)

    artifact_store = _AtomicFileStore(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        artifact_store.write(str(uuid.uuid4()), Breaks(b"0123456789"))
    assert list(tmp_path.iterdir()) == []


def test_finished_trials_keep_only_the_best_k_checkpoints(
    study: optuna.Study, tmp_path: Path
) -> None:
    store = TrialCheckpoints(tmp_path / "kept", every=1, keep=1)
    for value in (0.3, 0.9, 0.5):
        trial = study.ask()
        store.save(trial, _state(1))
        study.tell(trial, value)
        store.discard_finished(study, trial._trial_id)
    pruned = study.ask()
    store.save(pruned, _state(1))
    study.tell(pruned, state=TrialState.PRUNED)
    store.discard_finished(study, pruned._trial_id)
    best = study.best_trial
    assert best.value == 0.9 and _files(store) == [best.user_attrs[ATTR_CHECKPOINT]["artifact_id"]]


def test_an_unwritable_checkpoint_dir_is_one_line_and_creates_nothing(
    tmp_path: Path, write_spec: Callable[..., Path]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(StorageError, match=r"worker\.checkpoint_dir: cannot write checkpoints in"):
        TrialCheckpoints(blocker / "sub", every=1)
    config = write_spec(base_spec(worker={"checkpoint_dir": str(blocker / "sub")}))
    journal = tmp_path / "studies.journal"
    result = run_hpo(
        "worker", "--config", str(config), env={"HPO_STORAGE_URL": f"journal://{journal}"}
    )
    assert result.returncode != 0
    assert result.stderr.startswith("error: worker.checkpoint_dir: cannot write checkpoints in")
    assert len(result.stderr.strip().splitlines()) == 1 and not journal.exists()

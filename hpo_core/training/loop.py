"""The training loop every trial and every champion runs.

One function, :func:`train_model`, with validated settings (:class:`TrainConfig`) and an
``on_epoch_end`` hook: the Optuna objective reports and prunes from the hook, champion training
logs from it. The model is any module whose ``forward(batch)`` returns logits; the data is
anything with ``train_batches(batch_size, generator)`` and ``val_batches(batch_size)``. What the
loss is and which validation score picks the best epoch is the task's business: a
:class:`MulticlassTask` (cross-entropy, accuracy; the ARC classifier) or a :class:`BinaryTask`
(weighted binary cross-entropy, AUC or another ranking metric; the imbalanced classifier).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BinaryTask",
    "EpochMetrics",
    "Evaluation",
    "MulticlassTask",
    "Task",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "configure_threads",
    "evaluate",
    "resolve_device",
    "train_model",
]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # passes over the training split (the resource Hyperband allocates)
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    batch_size: int = 32  # samples per optimiser step
    use_scheduler: bool = False  # linear warm-up then cosine decay (see train_model)
    warmup_fraction: float = 0.05  # share of all steps spent warming up, with the scheduler
    early_stop_patience: int | None = None  # stop after this many epochs without a new best
    grad_clip: float | None = 1.0  # max global gradient norm, None to disable
    seed: int = 0  # seeds weights, batch order and augmentation
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # bfloat16/float16 autocast on CUDA; ignored on CPU

    def __post_init__(self) -> None:
        checks = {
            "epochs >= 1": self.epochs >= 1,
            "lr > 0": self.lr > 0,
            "weight_decay >= 0": self.weight_decay >= 0,
            "0 <= label_smoothing < 1": 0 <= self.label_smoothing < 1,
            "batch_size >= 1": self.batch_size >= 1,
            "0 <= warmup_fraction < 1": 0 <= self.warmup_fraction < 1,
            "early_stop_patience >= 1": self.early_stop_patience is None
            or self.early_stop_patience >= 1,
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"{broken[0]} must hold, but got {self!r}")

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> TrainConfig:
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in params.items() if k in names}
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_score: float  # the task's validation score: picks the best epoch, reported to Optuna
    lr: float  # learning rate at the end of the epoch
    seconds: float
    is_best: bool
    metrics: dict[str, float] = field(default_factory=dict)  # the task's others, e.g. train_acc


@dataclass
class TrainResult:
    history: list[EpochMetrics]
    best_epoch: int
    best_score: float  # the task's validation score at the best epoch
    best_state: dict[str, torch.Tensor]  # weights at the best epoch, on CPU
    per_class_val_acc: list[float | None]  # multiclass, at the best epoch; None: class not in val
    train_seconds: float
    stopped_early: bool
    device: str
    samples_per_second: float = 0.0  # training samples processed per second
    best_metrics: dict[str, float] = field(default_factory=dict)  # the task's, at the best epoch
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_trained(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean loss over the batches
    score: float  # the task's score (higher is better)
    metrics: dict[str, float] = field(default_factory=dict)  # more figures, logged per epoch
    per_class: list[float | None] = field(default_factory=list)  # multiclass accuracy per class


class _Batch(Protocol):
    def to(self, device: torch.device | str) -> Any: ...
    def __len__(self) -> int: ...


class TrainData(Protocol):
    n_classes: int

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Sequence[tuple[Any, torch.Tensor]]: ...

    def val_batches(self, batch_size: int) -> Sequence[tuple[Any, torch.Tensor]]: ...


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def configure_threads() -> int:
    """Use ``HPO_TORCH_THREADS`` intra-op threads when set (``hpo sweep`` sets it to the cores per
    local worker, so N workers on one machine do not oversubscribe its cores)."""
    value = os.environ.get("HPO_TORCH_THREADS", "")
    if value.isdigit() and int(value) > 0 and torch.get_num_threads() != int(value):
        torch.set_num_threads(int(value))
    return torch.get_num_threads()


def _autocast(device: torch.device, enabled: bool) -> Any:
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _forward(
    model: nn.Module,
    batches: Sequence[tuple[Any, torch.Tensor]],
    *,
    device: torch.device,
    amp: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 logits, labels) per batch, the model in eval mode; call under no_grad."""
    model.eval()
    for batch, labels in batches:
        batch, labels = batch.to(device), labels.to(device)
        with _autocast(device, amp):
            logits = model(batch).float()
        yield logits, labels  # outside autocast: the caller's loss runs in float32


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Sequence[tuple[Any, torch.Tensor]],
    n_classes: int,
    *,
    device: torch.device,
    amp: bool = True,
) -> tuple[float, float, list[float | None]]:
    """Mean loss, accuracy and per-class accuracy over the batches (a multiclass model)."""
    result = MulticlassTask(n_classes).evaluate(model, batches, device=device, amp=amp)
    return result.loss, result.score, result.per_class


class Task(Protocol):
    """What the loop needs to know about a kind of model: its loss and its validation score."""

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def train_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Sums over one training batch (the loop averages them per sample)."""
        ...

    def evaluate(
        self,
        model: nn.Module,
        batches: Sequence[tuple[Any, torch.Tensor]],
        *,
        device: torch.device,
        amp: bool,
    ) -> Evaluation: ...


@dataclass(frozen=True)
class MulticlassTask:
    """Cross-entropy over class logits; the best epoch has the best validation accuracy."""

    n_classes: int
    label_smoothing: float = 0.0

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def train_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return {"train_acc": float((logits.argmax(-1) == labels).sum())}

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        batches: Sequence[tuple[Any, torch.Tensor]],
        *,
        device: torch.device,
        amp: bool,
    ) -> Evaluation:
        total_loss, correct, count = 0.0, 0, 0
        hits = torch.zeros(self.n_classes)
        seen = torch.zeros(self.n_classes)
        for logits, labels in _forward(model, batches, device=device, amp=amp):
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            right = (logits.argmax(-1) == labels).cpu()
            correct += int(right.sum())
            count += len(labels)
            seen += torch.bincount(labels.cpu(), minlength=self.n_classes).float()
            hits += torch.bincount(labels.cpu()[right], minlength=self.n_classes).float()
        per_class = [float(h / s) if s else None for h, s in zip(hits, seen, strict=True)]
        acc = correct / max(count, 1)
        return Evaluation(total_loss / max(count, 1), acc, {"val_acc": acc}, per_class)


@dataclass(frozen=True)
class BinaryTask:
    """Binary cross-entropy on one logit per sample, positives weighted by ``pos_weight`` (the
    class imbalance; 1.0 when batches are already balanced). The best epoch has the best
    validation ``select`` metric (``auc``, ``average_precision``, ...: a key of
    :func:`hpo_core.metrics.binary_metrics`). No accuracy: it hides the trade-off on rare
    positives."""

    pos_weight: float = 1.0
    select: str = "auc"
    threshold: float = 0.5  # precision and recall are logged at this score
    top_percents: tuple[float, ...] = (1.0, 5.0, 10.0)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor(self.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)

    def train_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def scores(
        self,
        model: nn.Module,
        batches: Sequence[tuple[Any, torch.Tensor]],
        *,
        device: torch.device,
        amp: bool = True,
    ) -> tuple[Any, Any, float]:
        """(labels, probabilities, summed loss) over the batches, as numpy arrays."""
        labels_all, scores_all, total = [], [], 0.0
        for logits, labels in _forward(model, batches, device=device, amp=amp):
            total += float(
                F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
            )
            labels_all.append(labels.cpu())
            scores_all.append(torch.sigmoid(logits).cpu())
        y = torch.cat(labels_all).numpy().astype("int64") if labels_all else None
        s = torch.cat(scores_all).numpy().astype("float64") if scores_all else None
        return y, s, total

    def evaluate(
        self,
        model: nn.Module,
        batches: Sequence[tuple[Any, torch.Tensor]],
        *,
        device: torch.device,
        amp: bool = True,
    ) -> Evaluation:
        from hpo_core.metrics import binary_metrics

        y, s, total = self.scores(model, batches, device=device, amp=amp)
        if y is None or s is None:
            return Evaluation(math.nan, math.nan)
        figures = binary_metrics(y, s, threshold=self.threshold, top_percents=self.top_percents)
        score = figures[self.select]
        logged = {f"val_{k}": v for k, v in figures.items() if not k.startswith("score_")}
        return Evaluation(total / len(y), score if math.isfinite(score) else -math.inf, logged)


def train_model(
    model: nn.Module,
    data: TrainData,
    config: TrainConfig,
    *,
    task: Task | None = None,
    on_epoch_end: Callable[[EpochMetrics], None] | None = None,
) -> TrainResult:
    """Train with AdamW and the task's loss; keep the weights of the best validation score.

    The task defaults to :class:`MulticlassTask` over ``data.n_classes`` with the config's label
    smoothing. With ``use_scheduler`` the learning rate warms up linearly over the first
    ``warmup_fraction`` of all steps, then follows a cosine decay to zero at the last step of
    ``epochs`` (the schedule is fixed by ``epochs``, so early stopping or pruning ends it early).
    Without it the rate is constant. ``on_epoch_end`` runs after each validation; an exception it
    raises (``optuna.TrialPruned``) ends training and propagates. Early stopping ends training
    after ``early_stop_patience`` epochs without a new best validation score.
    """
    task = task or MulticlassTask(data.n_classes, config.label_smoothing)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    first_epoch = data.train_batches(config.batch_size, generator)
    steps_per_epoch = len(first_epoch)
    total_steps = max(1, steps_per_epoch * config.epochs)
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            _lr_lambda(total_steps, max(1, round(config.warmup_fraction * total_steps))),
        )
        if config.use_scheduler
        else None
    )
    val_batches = data.val_batches(config.batch_size)
    history: list[EpochMetrics] = []
    best_score, best_epoch = -math.inf, 0
    best_state: dict[str, torch.Tensor] = {}
    best_eval = Evaluation(math.nan, math.nan)
    since_best = 0
    samples, train_time = 0, 0.0
    began = time.perf_counter()
    stopped_early = False
    for epoch in range(1, config.epochs + 1):
        epoch_began = time.perf_counter()
        batches = first_epoch if epoch == 1 else data.train_batches(config.batch_size, generator)
        model.train()
        loss_sum, count = 0.0, 0
        sums: dict[str, float] = {}
        for batch, labels in batches:
            batch, labels = batch.to(device), labels.to(device)
            with _autocast(device, config.amp):
                logits = model(batch).float()
            loss = task.loss(logits, labels)
            if not torch.isfinite(loss):  # diverged: the worker prunes the trial with this
                value = float(loss.detach())
                raise FloatingPointError(f"training loss is {value} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += float(loss.detach()) * len(labels)
            for key, value in task.train_metrics(logits.detach(), labels).items():
                sums[key] = sums.get(key, 0.0) + value
            count += len(labels)
        train_time += time.perf_counter() - epoch_began
        samples += count
        evaluation = task.evaluate(model, val_batches, device=device, amp=config.amp)
        is_best = evaluation.score > best_score
        if is_best:
            best_score, best_epoch, since_best = evaluation.score, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best_eval = evaluation
        else:
            since_best += 1
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=loss_sum / max(count, 1),
            val_loss=evaluation.loss,
            val_score=evaluation.score,
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - epoch_began,
            is_best=is_best,
            metrics={k: v / max(count, 1) for k, v in sums.items()} | evaluation.metrics,
        )
        history.append(metrics)
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        if config.early_stop_patience and since_best >= config.early_stop_patience:
            stopped_early = epoch < config.epochs
            break
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        best_score=best_score,
        best_state=copy.copy(best_state),
        per_class_val_acc=best_eval.per_class,
        train_seconds=time.perf_counter() - began,
        stopped_early=stopped_early,
        device=str(device),
        samples_per_second=samples / train_time if train_time > 0 else 0.0,
        best_metrics=best_eval.metrics,
    )

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
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "BinaryTask",
    "Checkpointing",
    "EpochMetrics",
    "Evaluation",
    "MulticlassTask",
    "Task",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "capture_rng_state",
    "configure_threads",
    "evaluate",
    "resolve_device",
    "restore_rng_state",
    "train_model",
]

CHECKPOINT_FORMAT = 1  # the layout of a training checkpoint; a resume refuses any other


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
    resumed_epoch: int | None = None  # epochs restored from a checkpoint; None: from the start

    @property
    def epochs_trained(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean loss over the batches
    score: float  # the task's score (higher is better)
    metrics: dict[str, float] = field(default_factory=dict)  # more figures, logged per epoch
    per_class: list[float | None] = field(default_factory=list)  # multiclass accuracy per class


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


@dataclass
class _Progress:
    """What the loop has learnt so far: saved in a checkpoint, restored on a resume."""

    history: list[EpochMetrics] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_eval: Evaluation = field(default_factory=lambda: Evaluation(math.nan, math.nan))
    since_best: int = 0  # epochs since the best one (early stopping)
    samples: int = 0  # training samples processed
    train_time: float = 0.0  # seconds spent in training batches

    def as_state(self) -> dict[str, Any]:
        return {
            "history": [asdict(m) for m in self.history],
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "best_eval": asdict(self.best_eval),
            "since_best": self.since_best,
            "samples": self.samples,
            "train_time": self.train_time,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Progress:
        return cls(
            history=[EpochMetrics(**m) for m in state["history"]],
            best_score=float(state["best_score"]),
            best_epoch=int(state["best_epoch"]),
            best_state=dict(state["best_state"]),
            best_eval=Evaluation(**state["best_eval"]),
            since_best=int(state["since_best"]),
            samples=int(state["samples"]),
            train_time=float(state["train_time"]),
        )


@dataclass
class _EpochSums:
    """Running sums over the batches of the epoch in progress."""

    loss: float = 0.0
    count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def capture_rng_state() -> dict[str, Any]:
    """Every global random state training may draw from (Python, NumPy, torch's CPU and, once
    CUDA is in use, every GPU's), as tensors and plain values so that it loads with
    ``torch.load(weights_only=True)``."""
    import random

    import numpy as np

    numpy_state: dict[str, Any] = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    # Asked only when this process uses CUDA already: asking would initialise it otherwise.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the random states :func:`capture_rng_state` captured. GPU states are restored on as
    many GPUs as both machines have (a resumed trial may land on a machine with fewer)."""
    import random

    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["key"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        for index in range(min(len(cuda), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda[index], index)


class Checkpointing(Protocol):
    """Where :func:`train_model` saves its state and finds it again (in a sweep, the trial's
    :class:`~hpo_core.objectives.TrialContext`).

    ``preempted`` is asked before every batch, so it must be cheap (a flag): a cause makes the
    loop save its state at that batch boundary and raise
    :class:`~hpo_core.errors.TrialPreempted`."""

    @property
    def checkpoint_every(self) -> int | None:
        """Save after every this many epochs; None: only when preempted."""
        ...

    def save_checkpoint(self, state: dict[str, Any]) -> None: ...

    def load_checkpoint(self) -> dict[str, Any] | None: ...

    def preempted(self) -> str | None: ...


@dataclass
class _Training:
    """The moving parts of one training run, and how they go into and out of a checkpoint."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    config: TrainConfig
    steps_per_epoch: int

    def state(
        self,
        progress: _Progress,
        *,
        epoch: int,
        batch: int,
        epoch_rng: torch.Tensor,
        sums: _EpochSums,
        epoch_seconds: float,
        elapsed: float,
    ) -> dict[str, Any]:
        """After ``epoch`` epochs and ``batch`` batches of the next; ``epoch_rng`` is the batch
        generator's state before it drew the next epoch's batches."""
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "batch": batch,
            "epochs": self.config.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": capture_rng_state(),
            "generator": epoch_rng,
            "progress": progress.as_state(),
            "sums": asdict(sums),
            "epoch_seconds": epoch_seconds,
            "elapsed": elapsed,
        }

    def restore(self, state: dict[str, Any]) -> tuple[_Progress, _EpochSums]:
        expected = {
            "format": CHECKPOINT_FORMAT,
            "epochs": self.config.epochs,
            "steps_per_epoch": self.steps_per_epoch,
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"the checkpoint of epoch {state.get('epoch')} was saved with {key}="
                    f"{state.get(key)!r}, but this run has {key}={value!r}; the code or data "
                    "changed since: run the trial again from the start"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        return _Progress.from_state(state["progress"]), _EpochSums(**state["sums"])


def train_model(
    model: nn.Module,
    data: TrainData,
    config: TrainConfig,
    *,
    task: Task | None = None,
    on_epoch_end: Callable[[EpochMetrics], None] | None = None,
    checkpoint: Checkpointing | None = None,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
) -> TrainResult:
    """Train with AdamW and the task's loss; keep the weights of the best validation score.

    The task defaults to :class:`MulticlassTask` over ``data.n_classes`` with the config's label
    smoothing. With ``use_scheduler`` the learning rate warms up linearly over the first
    ``warmup_fraction`` of all steps, then follows a cosine decay to zero at the last step of
    ``epochs`` (the schedule is fixed by ``epochs``, so early stopping or pruning ends it early).
    Without it the rate is constant. ``on_epoch_end`` runs after each validation; an exception it
    raises (``optuna.TrialPruned``) ends training and propagates. Early stopping ends training
    after ``early_stop_patience`` epochs without a new best validation score.

    With ``checkpoint``, training starts from its saved state when it has one (model, optimizer,
    scheduler, random states, batch order, the best epoch so far, early-stopping count and the
    history; mid-epoch too), ``on_resume`` gets the epochs it restored, and ``on_epoch_end``
    runs only for the epochs after them, so no epoch is reported twice. The state is saved after
    every ``checkpoint_every`` epochs (after ``on_epoch_end``, so a pruned epoch is not saved),
    and at the next batch boundary once ``checkpoint.preempted()`` gives a cause, which then ends
    training with :class:`~hpo_core.errors.TrialPreempted`. On one device a resumed run ends with
    the same figures as an uninterrupted one, bit for bit on the CPU.
    """
    from hpo_core.errors import TrialPreempted

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
    saved = checkpoint.load_checkpoint() if checkpoint is not None else None
    if saved is not None:
        generator.set_state(saved["generator"])  # as it was before the saved epoch's batches
    epoch_rng = generator.get_state()
    batches = data.train_batches(config.batch_size, generator)
    steps_per_epoch = len(batches)
    total_steps = max(1, steps_per_epoch * config.epochs)
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            _lr_lambda(total_steps, max(1, round(config.warmup_fraction * total_steps))),
        )
        if config.use_scheduler
        else None
    )
    run = _Training(model, optimizer, scheduler, generator, config, steps_per_epoch)
    val_batches = data.val_batches(config.batch_size)
    progress, sums = _Progress(), _EpochSums()
    first_epoch, first_batch, carried = 1, 0, 0.0
    if saved is not None:
        progress, sums = run.restore(saved)
        first_epoch, first_batch = int(saved["epoch"]) + 1, int(saved["batch"])
        carried = float(saved["epoch_seconds"])
        if on_resume is not None:
            on_resume(list(progress.history))
    patience = config.early_stop_patience
    stopped_early = bool(patience and progress.since_best >= patience)
    last_epoch = len(progress.history) if stopped_early else config.epochs
    every = checkpoint.checkpoint_every if checkpoint is not None else None
    # Timers continue from the saved run, so train_seconds covers both.
    began = time.perf_counter() - (float(saved["elapsed"]) if saved is not None else 0.0)
    for epoch in range(first_epoch, last_epoch + 1):
        epoch_began = time.perf_counter() - carried
        if epoch > first_epoch:
            epoch_rng = generator.get_state()
            batches = data.train_batches(config.batch_size, generator)
            sums, carried = _EpochSums(), 0.0
        model.train()
        for index in range(first_batch if epoch == first_epoch else 0, len(batches)):
            cause = checkpoint.preempted() if checkpoint is not None else None
            if checkpoint is not None and cause:
                now = time.perf_counter()
                checkpoint.save_checkpoint(
                    run.state(
                        progress,
                        epoch=epoch - 1,
                        batch=index,
                        epoch_rng=epoch_rng,
                        sums=sums,
                        epoch_seconds=now - epoch_began,
                        elapsed=now - began,
                    )
                )
                raise TrialPreempted(cause, epoch=epoch - 1, batch=index)
            _train_step(run, task, batches[index], sums, device=device, epoch=epoch)
        progress.train_time += time.perf_counter() - epoch_began
        progress.samples += sums.count
        evaluation = task.evaluate(model, val_batches, device=device, amp=config.amp)
        is_best = evaluation.score > progress.best_score
        if is_best:
            progress.best_score, progress.best_epoch = evaluation.score, epoch
            progress.since_best = 0
            progress.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            progress.best_eval = evaluation
        else:
            progress.since_best += 1
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=sums.loss / max(sums.count, 1),
            val_loss=evaluation.loss,
            val_score=evaluation.score,
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - epoch_began,
            is_best=is_best,
            metrics={k: v / max(sums.count, 1) for k, v in sums.metrics.items()}
            | evaluation.metrics,
        )
        progress.history.append(metrics)
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        if checkpoint is not None and every and epoch % every == 0:
            now = time.perf_counter()
            checkpoint.save_checkpoint(
                run.state(
                    progress,
                    epoch=epoch,
                    batch=0,
                    epoch_rng=generator.get_state(),
                    sums=_EpochSums(),
                    epoch_seconds=0.0,
                    elapsed=now - began,
                )
            )
        if patience and progress.since_best >= patience:
            stopped_early = epoch < config.epochs
            break
    return TrainResult(
        history=progress.history,
        best_epoch=progress.best_epoch,
        best_score=progress.best_score,
        best_state=copy.copy(progress.best_state),
        per_class_val_acc=progress.best_eval.per_class,
        train_seconds=time.perf_counter() - began,
        stopped_early=stopped_early,
        device=str(device),
        samples_per_second=(
            progress.samples / progress.train_time if progress.train_time > 0 else 0.0
        ),
        best_metrics=progress.best_eval.metrics,
        resumed_epoch=int(saved["epoch"]) if saved is not None else None,
    )


def _train_step(
    run: _Training,
    task: Task,
    batch: tuple[Any, torch.Tensor],
    sums: _EpochSums,
    *,
    device: torch.device,
    epoch: int,
) -> None:
    """One optimiser step on one batch; adds the batch's loss and metrics to ``sums``."""
    inputs, labels = batch[0].to(device), batch[1].to(device)
    with _autocast(device, run.config.amp):
        logits = run.model(inputs).float()
    loss = task.loss(logits, labels)
    if not torch.isfinite(loss):  # diverged: the worker prunes the trial with this
        value = float(loss.detach())
        raise FloatingPointError(f"training loss is {value} at epoch {epoch}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.config.grad_clip:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.optimizer.step()
    if run.scheduler is not None:
        run.scheduler.step()
    sums.loss += float(loss.detach()) * len(labels)
    for key, value in task.train_metrics(logits.detach(), labels).items():
        sums.metrics[key] = sums.metrics.get(key, 0.0) + value
    sums.count += len(labels)

"""What an objective receives for one trial."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import optuna

    from hpo_core.spec import SweepSpec

__all__ = ["ATTR_CONSTANTS", "CheckpointStore", "TrialContext"]

# The keys a trial recorded with TrialContext.set_constant: facts of the data, not measures.
ATTR_CONSTANTS = "sweepflow.constants"


class CheckpointStore(Protocol):
    """Where a trial's checkpoints are kept (the worker's: Optuna's artifact store)."""

    every: int | None  # epochs between saves; None: only when preempted

    def save(self, trial: optuna.Trial, state: dict[str, Any]) -> None: ...

    def load(self, trial: optuna.Trial) -> dict[str, Any] | None: ...


@dataclass
class TrialContext:
    """One trial as an objective sees it: its parameters, the spec's data section, reporting,
    and checkpoints.

    ``params`` holds the fixed parameters and the sampled ones together, so an objective reads
    ``ctx.params["lr"]`` whether ``lr`` was fixed or searched.

    A trial that may be preempted (a spot instance, an evicted pod, ``hpo stop --now``) saves
    its state with :meth:`save_checkpoint` at epoch ends, asks :meth:`preempted` between
    batches (when it gives a cause: save, then raise :class:`~hpo_core.errors.TrialPreempted`),
    and starts with :meth:`load_checkpoint`, which on a re-queued trial gives its parent's
    state. The context is a :class:`hpo_core.training.Checkpointing`: the shared training loop
    (``train_model(..., checkpoint=ctx)``) does all of this. An objective that never asks
    :meth:`preempted` runs its trial to the end, as without checkpoints.
    """

    trial: optuna.Trial
    params: Mapping[str, Any]
    spec: SweepSpec
    data: Mapping[str, Any] = field(default_factory=dict)
    checkpoints: CheckpointStore | None = None  # None: no checkpoints (smoke trials, or disabled)
    stop_request: Callable[[], str | None] | None = None  # the worker's: why to stop now

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def checkpoint_every(self) -> int | None:
        """Epochs between checkpoints (the spec's ``worker.checkpoint_every``); None: none."""
        return self.checkpoints.every if self.checkpoints is not None else None

    def report(self, value: float, step: int) -> None:
        """Report an intermediate value (e.g. per epoch); raises TrialPruned when pruned."""
        import optuna

        if not math.isfinite(value):
            raise optuna.TrialPruned(f"intermediate value at step {step} is {value}")
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with value {value:.6g}")

    def set_attr(self, key: str, value: Any) -> None:
        """Record a small JSON-able fact about the trial (e.g. parameter count)."""
        self.trial.set_user_attr(key, value)

    def set_constant(self, key: str, value: Any) -> None:
        """Record a fact of the sweep's data, the same in every trial (class count, split
        sizes, chance level): like :meth:`set_attr`, and MLflow gets it as a param, not as a
        metric whose chart is a flat line."""
        self.trial.set_user_attr(key, value)
        marked = list(self.trial.user_attrs.get(ATTR_CONSTANTS) or [])
        if key not in marked:
            self.trial.set_user_attr(ATTR_CONSTANTS, [*marked, key])

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save the objective's state: a dict with an int ``epoch`` (the last completed epoch,
        whose value was reported), holding tensors and plain containers (it is loaded with
        ``torch.load(weights_only=True)``). Replaces the trial's previous checkpoint."""
        if self.checkpoints is not None:
            self.checkpoints.save(self.trial, state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state this trial, or the trial it was re-queued from, saved last; None if none.
        The steps up to its ``epoch`` are reported already (inherited from the parent)."""
        return None if self.checkpoints is None else self.checkpoints.load(self.trial)

    def preempted(self) -> str | None:
        """Why the trial must stop now (SIGTERM, ``hpo stop --now``), or None; cheap enough to
        ask before every batch."""
        return self.stop_request() if self.stop_request is not None else None

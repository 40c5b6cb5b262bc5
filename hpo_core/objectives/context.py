"""What an objective receives for one trial."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from hpo_core.spec import SweepSpec

__all__ = ["TrialContext"]


@dataclass
class TrialContext:
    """One trial as an objective sees it: its parameters, the spec's data section, and reporting.

    ``params`` holds the fixed parameters and the sampled ones together, so an objective reads
    ``ctx.params["lr"]`` whether ``lr`` was fixed or searched.
    """

    trial: optuna.Trial
    params: Mapping[str, Any]
    spec: SweepSpec
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return self.trial.number

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

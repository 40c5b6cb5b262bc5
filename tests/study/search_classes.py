"""Samplers and pruners a spec names by path in tests (``tests.study.search_classes:<Class>``)."""

from __future__ import annotations

from typing import Any

import optuna


class JitterSampler(optuna.samplers.RandomSampler):
    """A spec author's sampler: Optuna's random one with an option of its own."""

    def __init__(self, *, seed: int | None = None, jitter: float = 0.0) -> None:
        super().__init__(seed=seed)
        self.jitter = jitter


class StepPruner(optuna.pruners.BasePruner):
    """Prunes every trial once it reports step ``step``."""

    def __init__(self, *, step: int = 1) -> None:
        self.step = step

    def prune(self, study: optuna.Study, trial: Any) -> bool:
        return trial.last_step is not None and trial.last_step >= self.step


class NotASampler:
    """A class, but not a sampler."""

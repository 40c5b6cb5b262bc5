"""Turning a spec into Optuna suggestions: samplers, pruners, conditionals and weighted choices.

Optuna has no weighted categorical. sweepflow draws a weighted parameter (seed 001's "encoder
ratio 75/25") from its declared weights, outside TPE, with a generator seeded by the sampler seed,
the trial number and the parameter name: the ratio holds exactly in expectation whatever the
other trials did, and a seeded sweep draws the same arms on every run. TPE still models every
other parameter, conditioned on what was drawn. A weighted switch is a design decision ("give the
weaker arm a fair trial"), so it is deliberately not optimised away.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from hpo_core.spec import SweepSpec, condition_holds
from hpo_core.storage.optuna_internals import HyperbandBracketHooks, reseed_sampler
from hpo_core.study.search import pruner_call, require_installed, sampler_call

if TYPE_CHECKING:
    from collections.abc import Container

    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "ATTR_PROBE_OF",
    "ATTR_PROBE_SEED",
    "ResumableHyperbandPruner",
    "WeightedChoiceSampler",
    "build_pruner",
    "build_sampler",
    "suggest_params",
]

# Trial attributes of a noise probe (hpo_core.study.enqueue_noise_probe): the trial whose
# configuration it repeats, and the seed it runs with instead of fixed.seed.
ATTR_PROBE_OF = "noise_probe_of"
ATTR_PROBE_SEED = "noise_probe_seed"


def build_sampler(spec: SweepSpec) -> BaseSampler:
    """The spec's sampler (:mod:`hpo_core.study.search` resolves and checks its class), wrapped
    for weighted choices and per-trial seeds."""
    require_installed(spec)
    cls, kwargs = sampler_call(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        base: BaseSampler = cls(**kwargs)
    weighted = {
        name: (list(p.choices or []), list(p.weights or []))
        for name, p in spec.param_ranges.items()
        if p.type == "categorical" and p.weights is not None
    }
    # Always wrapped: besides weighted choices, the wrapper reseeds per trial (see its docstring).
    return WeightedChoiceSampler(base, weighted, seed=spec.sampler.seed)


def build_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    cls, kwargs = pruner_call(spec)
    if spec.pruner.type == "hyperband":
        return ResumableHyperbandPruner(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(**kwargs)  # type: ignore[no-any-return]


class ResumableHyperbandPruner(HyperbandBracketHooks):
    """Optuna's Hyperband, judging a re-queued trial as it would have judged the original.

    A lost trial is re-queued as a new trial (``hpo_core.worker.lost``) that resumes from the
    checkpoint, with a new number; Hyperband picks a trial's bracket from its number (a CRC32 of
    study name and number), so the copy could land in another bracket, with other rung steps and
    other competitors, and be pruned or kept where the original would not have been. Here every
    trial's bracket comes from its original number (Optuna's ``failed_trial``): the trial judged
    and its competitors alike. And a trial that was re-queued competes no more: its copy
    carries its rung values (``completed_rung_<k>``, copied with the system attributes), so the
    pair counts once. The copy's current rung is the original's, so a step it re-trains after
    the checkpoint is not judged a second time at a rung the original passed.

    Hooks into two private methods of Optuna's pruner (through
    ``hpo_core.storage.optuna_internals``); tests/study/test_resume_pruning.py holds them to
    their contract.
    """

    def bracket_id(self, study: optuna.Study, trial: FrozenTrial) -> int:
        origin = trial.system_attrs.get("failed_trial", trial.number)
        if origin == trial.number:
            return super().bracket_id(study, trial)
        return super().bracket_id(study, _Numbered(origin))  # type: ignore[arg-type]

    def bracket_study(self, study: optuna.Study, bracket_id: int) -> optuna.Study:
        return _WithoutRetried(super().bracket_study(study, bracket_id))  # type: ignore[return-value]


class _Numbered:
    """What Hyperband reads of a trial to pick its bracket: the number."""

    def __init__(self, number: int) -> None:
        self.number = number


class _WithoutRetried:
    """A bracket's study without the trials that were re-queued (their copies stand in)."""

    def __init__(self, study: optuna.Study) -> None:
        self._bracket = study

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._bracket.get_trials(deepcopy=deepcopy, states=states)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        return [t for t in trials if t.number not in retried] if retried else trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bracket, name)


def suggest_params(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """Fixed values plus one sampled value per active parameter, parents before children; a
    noise probe's ``seed`` is its own (the enqueued trial's attribute), not ``fixed.seed``."""
    values: dict[str, Any] = dict(spec.fixed)
    for name in spec.sampling_order():
        param = spec.param_ranges[name]
        if not condition_holds(param.when, values):
            continue
        if param.type == "float":
            assert param.low is not None and param.high is not None
            values[name] = trial.suggest_float(
                name, param.low, param.high, log=param.log, step=None if param.log else param.step
            )
        elif param.type == "int":
            assert param.low is not None and param.high is not None
            values[name] = trial.suggest_int(
                name, int(param.low), int(param.high), step=int(param.step or 1), log=param.log
            )
        elif param.type == "categorical":
            values[name] = trial.suggest_categorical(name, list(param.choices or []))
        else:
            values[name] = trial.suggest_categorical(name, [True, False])
    seed = trial.user_attrs.get(ATTR_PROBE_SEED)  # cached with the trial: no storage read
    if isinstance(seed, int) and not isinstance(seed, bool):
        values["seed"] = seed
    return values


class WeightedChoiceSampler(BaseSampler):
    """Wraps a sampler; draws the weighted categorical parameters from their weights.

    With a seed it also reseeds the wrapped sampler's random state before each trial from
    ``(seed, trial.number)``. A seeded sampler is otherwise one random stream per process: N
    workers started with the same spec would each draw the same sequence and run the same
    configurations N times over. Per-trial seeds keep every trial distinct and make a trial's
    random draws depend only on its number and the history it sees, however many workers run.
    """

    def __init__(
        self,
        base: BaseSampler,
        weighted: dict[str, tuple[list[Any], list[float]]],
        *,
        seed: int | None = None,
    ) -> None:
        self._base = base
        self._seed = seed
        self._weighted = {
            name: (choices, np.asarray(weights, dtype=float) / float(np.sum(weights)))
            for name, (choices, weights) in weighted.items()
        }

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._base.infer_relative_search_space(study, trial)
        return {k: v for k, v in space.items() if k not in self._weighted}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name not in self._weighted:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        choices, probabilities = self._weighted[param_name]
        if self._seed is None:
            rng = np.random.default_rng()
        else:
            rng = np.random.default_rng([self._seed, trial.number, zlib.crc32(param_name.encode())])
        return choices[int(rng.choice(len(choices), p=probabilities))]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._seed is not None:
            reseed_sampler(self._base, trial_seed(self._seed, trial.number))
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for one trial, well mixed from the spec's seed and the trial number."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, number]).generate_state(1)[0])

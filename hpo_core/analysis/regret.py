"""Optuna's regret bound: how much better than the best so far the optimum can still be.

``optuna.terminator.RegretBoundEvaluator`` (Makarova et al. 2022, "Automatic termination for
hyperparameter optimization") fits a Gaussian process to the best completed trials and bounds,
with high probability (``delta`` 0.1), the gap between the best value found and the best value
in the search space. A small bound says more trials are unlikely to pay: the ``regret_bound``
decision rule ends a sweep at a checkpoint once the bound falls below a tolerance the user gives
in the metric's units.

This module is the only one that touches ``optuna.terminator``: Optuna 4.9 deprecated it (to be
removed in 6.0, ported to OptunaHub's ``callbacks/terminator``; we pin ``optuna<6``), so an
upgrade breaks one file loudly. Its Gaussian process runs on torch, imported here only when a
bound is asked for (importing ``hpo_core`` never imports torch).
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["MAX_MODEL_TRIALS", "MIN_COMPLETE", "RegretBound", "regret_bound"]

MIN_COMPLETE = 20  # Optuna's own minimum (terminator DEFAULT_MIN_N_TRIALS)
# The process is fitted on the best half of the completed trials, at most this many: its cost
# grows with the cube of the points (2,000 trials uncapped: 6.8 s; capped at 100: 0.4 s)
MAX_MODEL_TRIALS = 200
_SEED = 0  # the bound samples the space; a fixed seed gives the same answer for the same trials
_memo: OrderedDict[tuple[object, ...], RegretBound] = OrderedDict()  # a replay asks twice


@dataclass(frozen=True)
class RegretBound:
    value: float | None  # in the metric's units; None: not computed (``note`` says why)
    complete: int  # completed trials it saw
    model_trials: int  # of which the best this many fitted the process
    seconds: float
    note: str = ""


def regret_bound(trials: Sequence[FrozenTrial], direction: str) -> RegretBound:
    """The regret bound over the completed ``trials`` (any order; other states are ignored).

    Parameters that not every completed trial has (conditional ones) are left out of the model,
    as Optuna does; with none left, or fewer than :data:`MIN_COMPLETE` completed trials, or
    without torch, there is no bound and ``note`` says why.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    n = len(complete)
    if n < MIN_COMPLETE:
        return RegretBound(None, n, 0, 0.0, f"needs {MIN_COMPLETE} completed trials, has {n}")
    key = (direction, *((t.number, t.value, t.datetime_complete) for t in complete))
    if key in _memo:
        return _memo[key]
    began = time.perf_counter()
    try:
        import torch  # noqa: F401  (the process's only hard dependency beyond Optuna)
    except ImportError:
        return RegretBound(
            None, n, 0, 0.0, "needs torch: pip install 'sweepflow[torch]' where decisions run"
        )
    from optuna.terminator import RegretBoundEvaluator

    ratio = min(0.5, MAX_MODEL_TRIALS / n)
    fitted = max(MIN_COMPLETE, min(n, int(n * ratio)))
    study_direction = (
        StudyDirection.MINIMIZE if direction == "minimize" else StudyDirection.MAXIMIZE
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental / deprecated: said once, in the docs
        evaluator = RegretBoundEvaluator(top_trials_ratio=ratio, seed=_SEED)
        try:
            value = float(evaluator.evaluate(trials=complete, study_direction=study_direction))
        except (ValueError, RuntimeError) as exc:  # e.g. no parameter shared by every trial
            return RegretBound(None, n, fitted, time.perf_counter() - began, _short(exc))
    bound = RegretBound(max(0.0, value), n, fitted, time.perf_counter() - began)
    _memo[key] = bound
    while len(_memo) > 16:
        _memo.popitem(last=False)
    return bound


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"not computable: {text[0] if text else type(exc).__name__}"

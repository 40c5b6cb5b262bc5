"""Parameter importance through ``optuna.importance`` (PED-ANOVA by default, fANOVA on request).

Optuna 5's PED-ANOVA handles conditional parameters (each is judged over the trials where it
exists); fANOVA only sees parameters present in every completed trial, so with conditional spaces
it covers the shared parameters only, and it is slow (about 90 s at 10,000 trials).

Pruned trials count (:mod:`.rungs`): importance is computed at the deepest level that at least
``min_trials`` trials reached (the completed trials' final values when there are enough of them,
else a rung, where every trial that reached it counts with its value there).

Beyond :data:`MAX_TRIALS` completed trials, PED-ANOVA runs on that many of them, evenly spaced by
trial number (early and late trials alike): its estimate is settled long before, and its cost
grows with every trial (about 0.1 ms per trial and parameter).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo_core.analysis.rungs import FINAL, LEVEL, RungView
from hpo_core.errors import HpoError

__all__ = ["importance_level", "level_study", "param_importance"]

Method = Literal["ped_anova", "fanova", "none"]
MAX_TRIALS = 2000


def param_importance(
    study: optuna.Study, method: Method = "ped_anova", *, seed: int = 0
) -> dict[str, float]:
    """Normalised importances (summing to 1), most important first; {} when not computable."""
    if method == "none":
        return {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 4 or not any(t.params for t in complete):
        return {}
    evaluator: optuna.importance.BaseImportanceEvaluator
    if method == "fanova":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise HpoError(
                "importance: fanova needs scikit-learn; `pip install scikit-learn` "
                "(or `pip install sweepflow[fanova]`), or use ped_anova"
            ) from None
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    else:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    target = None
    if method == "ped_anova" and len(complete) > MAX_TRIALS:
        # trials whose target is not finite are left out; PED-ANOVA takes a target as lower
        # is better
        kept = {t.number for t in complete[:: math.ceil(len(complete) / MAX_TRIALS)]}
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0

        def target(t: FrozenTrial) -> float:
            return sign * float(t.value) if t.number in kept and t.value is not None else math.nan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=target
            )
        except (RuntimeError, ValueError):  # e.g. every trial has the same value
            return {}
    return {name: float(v) for name, v in values.items()}


def importance_level(view: RungView, min_trials: int) -> str:
    """The deepest level at least ``min_trials`` trials reached; else the one most reached."""
    reached = {r.label: r.reached for r in view.rungs}
    for level in view.levels:
        if reached[level] >= min_trials:
            return level
    return max(view.levels, key=lambda level: reached[level])


def level_study(
    direction: Literal["minimize", "maximize"],
    view: RungView,
    level: str,
    trials: Sequence[FrozenTrial],
) -> optuna.Study:
    """An in-memory study of the trials that reached ``level``, each completed with its value
    there (Optuna's importance evaluators read completed trials only)."""
    values = view.frame.set_index("number")[LEVEL + level].dropna()
    study = optuna.create_study(direction=direction)
    if level == FINAL:
        keep = [t for t in trials if t.number in values.index]
    else:
        keep = [
            create_trial(
                params=t.params,
                distributions=t.distributions,
                value=float(values[t.number]),
                state=TrialState.COMPLETE,
            )
            for t in trials
            if t.number in values.index
        ]
    study.add_trials(keep)
    return study

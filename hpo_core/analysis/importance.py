"""Parameter importance through ``optuna.importance`` (PED-ANOVA by default, fANOVA on request).

Optuna 5's PED-ANOVA handles conditional parameters (each is judged over the trials where it
exists); fANOVA only sees parameters present in every completed trial, so with conditional spaces
it covers the shared parameters only, and it is slow (about 90 s at 10,000 trials).
"""

from __future__ import annotations

import warnings
from typing import Literal

import optuna
from optuna.trial import TrialState

from hpo_core.errors import HpoError

__all__ = ["param_importance"]

Method = Literal["ped_anova", "fanova", "none"]


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (RuntimeError, ValueError):  # e.g. every trial has the same value
            return {}
    return {name: float(v) for name, v in values.items()}

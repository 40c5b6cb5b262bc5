"""Smoke trials: a spec's objective run end to end, briefly, in a scratch in-memory study.

The pre-launch check of a sweep (and ``hpo smoke``) runs one trial with few epochs on a small
subset of the data, so a broken data path, a model that cannot be built or an objective that
crashes shows up in a minute, before any worker starts and without touching the real study.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

from hpo_core.errors import HpoError
from hpo_core.objectives import TrialContext, require_objective_spec, resolve_objective
from hpo_core.objectives.registry import smoke_data
from hpo_core.spec import SweepSpec
from hpo_core.study.sampling import suggest_params

__all__ = ["SmokeResult", "run_smoke_trials"]


@dataclass(frozen=True)
class SmokeResult:
    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None
    params: dict[str, Any]
    attrs: dict[str, Any]
    seconds: float
    error: str | None = None  # one line: what failed
    traceback: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETE"


def smoke_spec(spec: SweepSpec, *, epochs: int = 1, max_samples: int | None = 64) -> SweepSpec:
    """The spec with few epochs and, where the objective reads a subset, ``data.max_samples``
    (the first samples by id); see :func:`hpo_core.objectives.registry.smoke_data`."""
    fixed = dict(spec.fixed)
    if "epochs" in fixed or "epochs" not in spec.param_ranges:
        fixed["epochs"] = epochs
    data = dict(spec.data)
    subset, _ = smoke_data(spec.objective, max_samples)
    if subset:
        data["max_samples"] = max_samples
    return spec.model_copy(update={"fixed": fixed, "data": data})


def run_smoke_trials(
    spec: SweepSpec,
    *,
    n_trials: int = 1,
    epochs: int = 1,
    max_samples: int | None = 64,
    seed: int = 0,
) -> list[SmokeResult]:
    """Run ``n_trials`` trials of the spec's objective with random parameters, no pruning."""
    import optuna

    objective = resolve_objective(spec.objective)
    require_objective_spec(spec)
    spec = smoke_spec(spec, epochs=epochs, max_samples=max_samples)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            direction=spec.direction,
            sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=optuna.pruners.NopPruner(),
        )
    results = []
    for _ in range(n_trials):
        trial = study.ask()
        began = time.monotonic()
        params: dict[str, Any] = {}
        state, value, error, trace = "FAIL", None, None, None
        try:
            params = suggest_params(trial, spec)
            raw = objective(TrialContext(trial=trial, params=params, spec=spec, data=spec.data))
            value = float(raw)
            state = "COMPLETE"
        except optuna.TrialPruned as exc:
            state, error = "PRUNED", str(exc)
        except HpoError as exc:
            error = str(exc)
        except Exception as exc:  # the point of a smoke trial is to catch anything
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            trace = traceback.format_exc()
        study.tell(
            trial, value if state == "COMPLETE" else None, state=optuna.trial.TrialState[state]
        )
        results.append(
            SmokeResult(
                number=trial.number,
                state=state,
                value=value,
                params={k: v for k, v in params.items() if k in spec.param_ranges},
                attrs=dict(study.trials[-1].user_attrs),
                seconds=time.monotonic() - began,
                error=error,
                traceback=trace,
            )
        )
    return results

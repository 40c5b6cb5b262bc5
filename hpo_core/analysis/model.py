"""An additive model of the objective over every searched parameter: each parameter is tested
with the others held fixed.

Adaptive samplers make marginal tests unsafe. Once TPE has learned the parameters that matter,
later trials are better; a parameter without any effect drifts wherever TPE's model of it happens
to wander, so its marginal correlation with the objective becomes large and "significant" (a
Spearman p of 1e-12 for a no-effect parameter is easy to get). Holding the other parameters fixed
closes that path, and the trial order, a covariate too, takes up what the model misses. It also
takes the other parameters' variance out of each test's noise, so real effects stand out.

Ordinary least squares (numpy) on: an intercept; the trial order (rank, centred) and its square;
per numeric parameter its position in the range ``x`` (log space for log parameters), centred
on its trials' mean so that its coefficient is the slope where the trials are (TPE may crowd them
at one end), and ``x^2``; per boolean or categorical one indicator per choice but the most common
one. A conditional parameter's columns are 0 where it is inactive (the switch's indicators carry
the difference between arms). Fitted only with at least :data:`MIN_DOF` residual degrees of
freedom and full rank; otherwise the tests fall back to marginal ones (:mod:`.effects`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hpo_core.analysis.rungs import LEVEL
from hpo_core.analysis.shapes import units
from hpo_core.analysis.trials import TrialsTable, coerce_value

__all__ = ["MIN_DOF", "AdditiveModel", "fit_additive"]

MIN_DOF = 10


@dataclass(frozen=True)
class AdditiveModel:
    level: str  # the rung (or final) whose trials it was fitted on
    n: int
    dof: int  # residual degrees of freedom
    beta: np.ndarray
    cov: np.ndarray
    index: pd.Index  # the rows' index in the rung view's frame
    columns: dict[str, list[int]]  # parameter -> its columns (numeric: x, x^2 if varied enough)
    choices: dict[str, list[Any]]  # categorical parameter -> the choice of each of its columns
    reference: dict[str, Any]  # categorical parameter -> the choice without a column
    centre: dict[str, float]  # numeric parameter -> the mean position its x is centred on
    mean: float  # the mean objective: the base of relative effects

    def test(self, contrast: np.ndarray) -> tuple[float, float | None]:
        """(estimate, two-sided p) of ``contrast @ beta``."""
        estimate = float(contrast @ self.beta)
        variance = float(contrast @ self.cov @ contrast)
        if not variance > 0:
            return estimate, None
        p = float(2 * stats.t.sf(abs(estimate) / math.sqrt(variance), self.dof))
        return estimate, p if math.isfinite(p) else None

    def joint(self, columns: list[int]) -> float | None:
        """p of the Wald F-test that the coefficients of ``columns`` are all 0."""
        b = self.beta[columns]
        try:
            statistic = float(b @ np.linalg.solve(self.cov[np.ix_(columns, columns)], b))
        except np.linalg.LinAlgError:
            return None
        p = float(stats.f.sf(statistic / len(columns), len(columns), self.dof))
        return p if math.isfinite(p) else None

    def unit(self, column: int) -> np.ndarray:
        vector = np.zeros(len(self.beta))
        vector[column] = 1.0
        return vector

    def effect_of(self, name: str, value: Any) -> np.ndarray:
        """The contrast of choice ``value`` of ``name`` against its reference choice."""
        vector = np.zeros(len(self.beta))
        if value in self.choices.get(name, []):
            vector[self.columns[name][self.choices[name].index(value)]] = 1.0
        return vector


def fit_additive(table: TrialsTable, frame: pd.DataFrame, level: str) -> AdditiveModel | None:
    """The model over the trials of ``frame`` (a rung view's) that have a value at ``level``;
    None when they are too few for it."""
    rows = frame[frame[LEVEL + level].notna()]
    n = len(rows)
    if n < MIN_DOF + 4:
        return None
    y = rows[LEVEL + level].to_numpy(dtype=float)
    order = rows["number"].rank().to_numpy(dtype=float) / n - 0.5
    blocks: list[np.ndarray] = [np.ones(n), order, order**2 - float(np.mean(order**2))]
    columns: dict[str, list[int]] = {}
    choices: dict[str, list[Any]] = {}
    reference: dict[str, Any] = {}
    centre: dict[str, float] = {}
    for name, param in table.spec.param_ranges.items():
        raw = rows[table.param(name)]
        active = raw.notna().to_numpy()
        if active.sum() < 2:
            continue
        start = len(blocks)
        if param.type in ("float", "int"):
            x = np.zeros(n)
            u = units(param, raw[active].to_numpy(dtype=float))
            centre[name] = float(np.mean(u))
            x[active] = u - centre[name]
            blocks.append(x)
            if len(np.unique(x[active])) >= 3:
                square = np.zeros(n)
                square[active] = x[active] ** 2 - float(np.mean(x[active] ** 2))
                blocks.append(square)
        else:
            values = raw[active].map({v: coerce_value(param, v) for v in raw[active].unique()})
            counts = values.value_counts()
            if len(counts) < 2:
                continue
            reference[name] = counts.index[0]
            choices[name] = [c for c in counts.index[1:]]
            for choice in choices[name]:
                indicator = np.zeros(n)
                indicator[active] = (values == choice).to_numpy(dtype=float)
                blocks.append(indicator)
        columns[name] = list(range(start, len(blocks)))
    design = np.column_stack(blocks)
    dof = n - design.shape[1]
    if dof < MIN_DOF:
        return None
    beta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < design.shape[1]:
        return None
    residual = y - design @ beta
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return AdditiveModel(
        level,
        n,
        dof,
        beta,
        cov,
        rows.index,
        columns,
        choices,
        reference,
        centre,
        float(np.mean(y)),
    )

"""The shape of a numeric parameter's effect: a line and a parabola over its range.

``x`` is the position in the range, 0 at the low bound and 1 at the high bound (log space for
log parameters, :func:`hpo_core.analysis.elites.to_unit`), ``y`` the objective. Ordinary least
squares with numpy; the parabola's quadratic term gets a two-sided t-test (its p-value joins the
Benjamini-Hochberg family of the analysis), and its vertex a 95% interval by the delta method.
An *interior optimum* is a parabola that opens the right way (down when maximising) whose
vertex interval lies inside the range: a rank correlation sees nothing there, or a trend toward
whichever side the range was cut less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from hpo_core.spec import ParamSpec

__all__ = ["Fit", "fit_shape", "from_units", "peak_of", "span_of", "units"]


def units(param: ParamSpec, values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` in the parameter's range, 0 at low and 1 at high (log if log)."""
    assert param.low is not None and param.high is not None
    low, high, x = float(param.low), float(param.high), np.asarray(values, dtype=float)
    if param.log:
        low, high, x = math.log(low), math.log(high), np.log(np.maximum(x, 1e-300))
    return np.full(x.shape, 0.5) if high == low else (x - low) / (high - low)


def from_units(param: ParamSpec, u: float) -> float:
    """The parameter's value at position ``u`` of its range (the inverse of :func:`units`)."""
    assert param.low is not None and param.high is not None
    low, high = float(param.low), float(param.high)
    if param.log:
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


@dataclass(frozen=True)
class Fit:
    p_quadratic: float | None  # two-sided t-test of the quadratic term
    peak: tuple[float, float, float] | None  # interior optimum: (vertex, low, high) in [0, 1]
    # best minus worst of the fitted curve over the range: the parabola with a peak, else the line
    difference: float
    curve: tuple[float, float, float]  # (b, c, shift): b x + c x^2 with x = u - shift


def _ols(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Coefficients (constant first), their covariance and the residual degrees of freedom."""
    design = np.vander(x, degree + 1, increasing=True)
    dof = len(y) - degree - 1
    if dof < 1:
        return None
    beta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < degree + 1:
        return None
    residual = y - design @ beta
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return beta, cov, dof


def peak_of(
    b: float, c: float, cov: np.ndarray, dof: int, *, maximize: bool, shift: float = 0.0
) -> tuple[float, float, float] | None:
    """The optimum of ``b x + c x^2`` moved by ``shift`` (x = u - shift) and its 95% interval by
    the delta method (``cov``: the 2 x 2 covariance of b and c), when the parabola opens the
    right way and the interval lies inside [0, 1]; else None."""
    if c == 0 or (c < 0) != maximize:
        return None
    vertex = -b / (2 * c) + shift
    gradient = np.array([-1 / (2 * c), b / (2 * c * c)])
    se = math.sqrt(max(float(gradient @ cov @ gradient), 0.0))
    half = float(stats.t.ppf(0.975, dof)) * se
    if vertex - half > 0.0 and vertex + half < 1.0:
        return float(vertex), float(vertex - half), float(vertex + half)
    return None


def span_of(b: float, c: float, *, maximize: bool, shift: float = 0.0) -> tuple[float, float]:
    """(best, worst) of ``b x + c x^2`` over the range, x = u - shift for u in [0, 1]."""
    x = np.linspace(0.0, 1.0, 101) - shift
    curve = b * x + c * x * x
    low, high = float(curve.min()), float(curve.max())
    return (high, low) if maximize else (low, high)


def fit_shape(x: np.ndarray, y: np.ndarray, *, maximize: bool) -> Fit | None:
    """Line and parabola of ``y`` over ``x`` in [0, 1]; None with fewer than 3 distinct ``x``
    or 5 points."""
    if len(x) < 5 or len(np.unique(x)) < 3:
        return None
    line = _ols(x, y, 1)
    quad = _ols(x, y, 2)
    if line is None or quad is None:
        return None
    (_, b, c), cov, dof = quad
    se_c = math.sqrt(cov[2, 2])
    p = float(2 * stats.t.sf(abs(c) / se_c, dof)) if se_c > 0 else None
    peak = peak_of(b, c, cov[1:, 1:], dof, maximize=maximize)
    if peak is None:
        (_, b), _, _ = line
        c = 0.0
    best, worst = span_of(b, c, maximize=maximize)
    p = p if p is not None and math.isfinite(p) else None
    return Fit(p, peak, best - worst, (float(b), float(c), 0.0))

"""A synthetic rare-event series to sweep on without real data: deterministic for a seed, with
regimes, a latent factor a model can learn, decoy features and a forward-looking label.

Only numpy and pandas are imported here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LABEL_HORIZON", "generate_binary_dataset"]

LABEL_HORIZON = 12  # rows ahead that generate_binary_dataset's label looks; a safe ``gap``
_BASE_FEATURES = ("ret_1", "ret_5", "ret_20", "vol_20", "volume_z")
_WARMUP = 20  # rows simulated before the first output row so rolling features are complete


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance. A plain loop: 20,000 steps take about 2 ms,
    while importing scipy.signal for ``lfilter`` takes about a second."""
    shocks = (rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)).tolist()
    level = float(rng.standard_normal())
    series = []
    for shock in shocks:
        level = phi * level + shock
        series.append(level)
    return np.array(series, dtype=np.float64)


def _rolling(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each trailing window of ``width`` values (own value
    included); the first ``width - 1`` entries are NaN."""
    view = np.lib.stride_tricks.sliding_window_view(values, width)
    pad = np.full(width - 1, np.nan)
    return np.concatenate([pad, view.mean(axis=1)]), np.concatenate([pad, view.std(axis=1)])


def generate_binary_dataset(
    n_rows: int = 20000,
    *,
    n_base: int = 5,
    n_alpha: int = 100,
    n_informative: int = 30,
    positive_rate: float = 0.07,
    n_regimes: int = 3,
    seed: int = 0,
    with_regime: bool = False,
) -> pd.DataFrame:
    """A synthetic hourly series of rare "buy" opportunities, deterministic for a seed.

    A price follows a Markov chain over ``n_regimes`` regimes (each with its own volatility and
    drift, about 400 rows per stay) plus a latent AR(1) factor that drives the next returns.
    ``label`` is 1 when the log return over the next :data:`LABEL_HORIZON` rows is above the
    ``1 - positive_rate`` quantile, so regimes with more drift or volatility have more positives.
    The last rows are not lost to the forward window: the series is simulated that many rows
    further and those extra rows are dropped, so all ``n_rows`` rows carry a real label.

    Columns: ``time`` (hourly from 2020-01-01), base features ``ret_1, ret_5, ret_20, vol_20,
    volume_z`` (the first ``n_base``; computed from the price), ``alpha_001 ..`` (``n_alpha``):
    the first ``n_informative`` are noisy, partly stale (lag 0-2) readings of the latent factor;
    the rest of ``alpha_001 .. alpha_050`` are noise sharing a common nuisance factor; from
    ``alpha_051`` on, noise with a weak signal whose sign drifts over time (it helps early and
    misleads later, so a 55-feature tier tends to beat the 105-feature one a little). Then the
    latent ``regime`` (0 .. n_regimes-1, only when ``with_regime``; never train on it) and
    ``label`` (int64 0/1).
    """
    if n_rows < 2:
        raise ValueError(f"n_rows: must be at least 2, got {n_rows}")
    if not 0 <= n_base <= len(_BASE_FEATURES):
        raise ValueError(f"n_base: must be in 0..{len(_BASE_FEATURES)}, got {n_base}")
    if n_alpha < 0 or not 0 <= n_informative <= min(50, n_alpha):
        raise ValueError(
            f"n_informative: must be in 0..min(50, n_alpha), got {n_informative} "
            f"(n_alpha={n_alpha})"
        )
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate: must be in (0, 1), got {positive_rate}")
    if n_regimes < 1:
        raise ValueError(f"n_regimes: must be at least 1, got {n_regimes}")
    rng = np.random.default_rng(seed)
    horizon = LABEL_HORIZON
    total = _WARMUP + n_rows + horizon
    out = slice(_WARMUP, _WARMUP + n_rows)

    # regimes: a sticky Markov chain; a switch moves to one of the other regimes at random
    if n_regimes > 1:
        switches = rng.random(total) < 1.0 / 400.0
        steps = np.where(switches, rng.integers(1, n_regimes, total), 0)
        regime = (int(rng.integers(n_regimes)) + np.cumsum(steps)) % n_regimes
        order = rng.permutation(n_regimes)
        vol = np.geomspace(0.85, 1.2, n_regimes)[order]
        drift = np.linspace(-0.04, 0.04, n_regimes)[order]
    else:
        regime = np.zeros(total, dtype=np.int64)
        vol, drift = np.ones(1), np.zeros(1)

    # returns: regime drift and volatility, the latent factor of the previous row, fat-tailed noise
    latent = _ar1(rng, total, 0.97)
    noise = rng.standard_t(5, total) / math.sqrt(5.0 / 3.0)
    scale = 0.004 * vol[regime]
    previous = np.concatenate([[0.0], latent[:-1]])
    ret = scale * (drift[regime] + 0.25 * previous + noise)
    log_price = np.cumsum(ret)
    forward = log_price[_WARMUP + horizon :] - log_price[_WARMUP : _WARMUP + n_rows]
    label = (forward > np.quantile(forward, 1.0 - positive_rate)).astype(np.int64)

    columns: dict[str, Any] = {
        "time": pd.date_range("2020-01-01", periods=n_rows, freq="h"),
    }
    log_volume = 0.6 * np.log(np.abs(noise) + 0.1) + 2.0 * np.log(vol[regime])
    log_volume += 0.5 * _ar1(rng, total, 0.9)
    volume_mean, volume_std = _rolling(log_volume, 20)
    base = {
        "ret_1": ret,
        "ret_5": log_price - np.concatenate([np.zeros(5), log_price[:-5]]),
        "ret_20": log_price - np.concatenate([np.zeros(20), log_price[:-20]]),
        "vol_20": _rolling(ret, 20)[1],
        "volume_z": (log_volume - volume_mean) / volume_std,
    }
    for name in _BASE_FEATURES[:n_base]:
        columns[name] = base[name][out]

    nuisance = _ar1(rng, n_rows, 0.9)
    alpha = rng.standard_normal((n_rows, n_alpha)) + 0.5 * nuisance[:, None]
    loading = rng.uniform(0.15, 0.45, n_informative) * rng.choice([-1.0, 1.0], n_informative)
    lags = rng.integers(0, 3, n_informative)
    for j in range(n_informative):
        start = _WARMUP - int(lags[j])
        alpha[:, j] += loading[j] * latent[start : start + n_rows]
    n_drifting = max(0, n_alpha - 50)
    if n_drifting:
        clock = np.linspace(0.0, 1.0, n_rows)[:, None]
        weak = rng.uniform(0.05, 0.15, n_drifting) * rng.choice([-1.0, 1.0], n_drifting)
        period = rng.uniform(1.0, 2.0, n_drifting)
        alpha[:, 50:] += weak * np.cos(np.pi * clock * period) * latent[out, None]
    # features on their own scales and offsets, as real ones come
    alpha = alpha * rng.lognormal(0.0, 1.0, n_alpha) + rng.normal(0.0, 2.0, n_alpha)
    for j in range(n_alpha):
        columns[f"alpha_{j + 1:03d}"] = alpha[:, j]
    if with_regime:
        columns["regime"] = regime[out].astype(np.int64)
    columns["label"] = label
    return pd.DataFrame(columns)

"""Objectives with controlled behaviour for tests: slow, failing, and crashing ones.

Referenced from test specs as ``hpo_core.testing.objectives:<name>``, which also exercises the
`package.module:function` form users take for their own code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hpo_core.objectives import TrialContext

__all__ = ["PLANTED_SPACE", "fails_when", "planted", "slow", "touch_and_sleep"]

# The search space of `planted`; the truth behind each parameter is in its docstring.
PLANTED_SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "width": {"type": "float", "low": 0.5, "high": 2.0},
    "use_bn": {"type": "bool"},
    "noise": {"type": "float", "low": 0.0, "high": 1.0},
    "act": {
        "type": "categorical",
        "choices": ["relu", "gelu", "silu", "tanh"],
        "weights": [0.91, 0.03, 0.03, 0.03],
    },
}


def planted(ctx: TrialContext) -> float:
    """A response surface with known truth, for testing the analysis and the refinement:

    - ``lr``: a strong effect with an interior optimum at 3e-3 (log scale);
    - ``width``: better the larger it is, so its optimum lies beyond the upper bound (2.0);
    - ``use_bn``: true is worth +0.05;
    - ``noise``: no effect at all;
    - ``act``: no effect, and weighted so that three of its choices get few trials
      (an underpowered categorical that must not be dropped or fixed).

    Plus Gaussian noise (sd ``data.sd``, default 0.01) seeded by the trial number.
    """
    import math

    import numpy as np

    p = ctx.params
    value = (
        0.6
        - 0.12 * math.log10(float(p["lr"]) / 3e-3) ** 2
        + 0.08 * float(p["width"])
        + (0.05 if p["use_bn"] else 0.0)
    )
    rng = np.random.default_rng([int(ctx.data.get("seed", 0)), ctx.trial.number])
    return float(value + rng.normal(0.0, float(ctx.data.get("sd", 0.01))))


def slow(ctx: TrialContext) -> float:
    """Sleeps ``data.seconds`` in small steps (reporting each), then returns ``x``."""
    seconds = float(ctx.data.get("seconds", 0.2))
    steps = max(1, int(seconds / 0.05))
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.trial.report(float(step), step)
    return float(ctx.params.get("x", 0.0))


def fails_when(ctx: TrialContext) -> float:
    """Raises when ``x`` is above ``data.threshold``; returns ``x`` otherwise."""
    x = float(ctx.params["x"])
    if x > float(ctx.data.get("threshold", 0.5)):
        raise RuntimeError(f"x={x:.3f} is above the threshold")
    return x


def touch_and_sleep(ctx: TrialContext) -> float:
    """Writes ``<data.marker_dir>/<pid>-<trial>`` then sleeps ``data.seconds``: tests find the
    process that is mid-trial and kill it."""
    marker = Path(str(ctx.data["marker_dir"])) / f"{os.getpid()}-{ctx.number}"
    marker.write_text(str(os.getpid()))
    time.sleep(float(ctx.data.get("seconds", 1.0)))
    return float(ctx.number)

"""Objectives with controlled behaviour for tests: slow, failing, and crashing ones.

Referenced from test specs as ``hpo_core.testing.objectives:<name>``, which also exercises the
`package.module:function` form users take for their own code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hpo_core.objectives import TrialContext

__all__ = ["fails_when", "slow", "touch_and_sleep"]


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

"""Built-in objectives with known behaviour, for the demo, tests and benchmarks.

``synthetic`` is a smooth response surface over whatever search space the spec declares: each
parameter has a hidden best point (derived from its name, so it is the same in every run), and
the value falls off with distance from it. Trials report a learning curve per epoch, so pruning
works as with a real model. The surface is known, so later analysis can be checked against it.
"""

from __future__ import annotations

import hashlib
import math
import time

from hpo_core.objectives.context import TrialContext

__all__ = ["noop", "objective", "sleep"]


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) from its arguments."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _position(ctx: TrialContext, name: str, value: object) -> float | None:
    """Where a numeric value sits in its range, 0..1 (log-aware); None if not a searched range."""
    param = ctx.spec.param_ranges.get(name)
    if param is None or param.type not in ("float", "int") or not isinstance(value, int | float):
        return None
    assert param.low is not None and param.high is not None
    if param.high == param.low:
        return 0.5
    if param.log:
        return (math.log(value) - math.log(param.low)) / (
            math.log(param.high) - math.log(param.low)
        )
    return (float(value) - param.low) / (param.high - param.low)


def score(ctx: TrialContext) -> float:
    """The noise-free final value of a configuration, between 0.1 and 0.9."""
    penalty = 0.0
    for name, value in sorted(ctx.params.items()):
        weight = 0.2 + _unit("weight", name)  # some parameters matter more than others
        position = _position(ctx, name, value)
        if position is not None:
            best = 0.15 + 0.7 * _unit("best", name)
            penalty += weight * (position - best) ** 2
        elif name in ctx.spec.param_ranges:  # categorical or bool: each choice has an offset
            penalty += 0.1 * weight * _unit("choice", name, value)
    return 0.1 + 0.8 * math.exp(-2.0 * penalty)


def objective(ctx: TrialContext) -> float:
    """A learning curve toward :func:`score`, reported per epoch.

    ``data.sleep_per_epoch`` paces it; ``data.noise`` sets the per-epoch jitter.
    """
    epochs = int(ctx.params.get("epochs", ctx.data.get("epochs", 10)))
    pause = float(ctx.data.get("sleep_per_epoch", 0.0))
    noise = float(ctx.data.get("noise", 0.01))
    final = score(ctx)
    value = 0.0
    for epoch in range(1, epochs + 1):
        if pause:
            time.sleep(pause)
        jitter = noise * (2 * _unit("noise", ctx.number, epoch) - 1)
        value = final * (1 - math.exp(-epoch / 3)) + jitter
        ctx.report(value, epoch)
    return value


def noop(ctx: TrialContext) -> float:
    """Nothing at all: measures the harness."""
    return 0.0


def sleep(ctx: TrialContext) -> float:
    """Sleeps ``data.sleep_seconds`` (default 0.5): work that does not use the CPU."""
    time.sleep(float(ctx.data.get("sleep_seconds", 0.5)))
    return score(ctx)

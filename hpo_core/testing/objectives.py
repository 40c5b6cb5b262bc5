"""Objectives with controlled behaviour for tests: slow, failing, and crashing ones.

Referenced from test specs as ``hpo_core.testing.objectives:<name>``, which also exercises the
`package.module:function` form users take for their own code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hpo_core.objectives import TrialContext

__all__ = [
    "PLANTED_SPACE",
    "dump_environment",
    "fails_when",
    "planted",
    "slow",
    "touch_and_sleep",
]

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


def diverges_when(ctx: TrialContext) -> float:
    """Trains a tiny model; above ``data.threshold`` on ``x`` with an infinite learning rate, so the
    loss goes to inf/NaN within a few steps, which the training loop reports as a
    FloatingPointError, as it does for a real model."""
    import torch

    from hpo_core.training import TrainConfig, train_model

    class _Data:
        n_classes = 2

        def __init__(self) -> None:
            gen = torch.Generator().manual_seed(0)
            self.x = torch.randn(64, 1, generator=gen) * 1e3
            self.y = (self.x[:, 0] > 0).long()

        def train_batches(self, batch_size: int, generator: Any) -> Any:
            return [(self.x, self.y)]

        def val_batches(self, batch_size: int) -> Any:
            return [(self.x, self.y)]

    lr = 1e-3 if ctx.params["x"] <= ctx.data["threshold"] else float("inf")
    model = torch.nn.Linear(1, 2)
    train_model(model, _Data(), TrainConfig(epochs=3, lr=lr, grad_clip=None, weight_decay=0))
    return float(ctx.params["x"])


def out_of_memory_when(ctx: TrialContext) -> float:
    """Raises the MemoryError a too-large allocation raises (``data.threshold`` on ``x``)."""
    if float(ctx.params["x"]) > float(ctx.data["threshold"]):
        import numpy as np

        np.empty(1 << 62, dtype=np.uint8)  # 4 EiB: refused at once, nothing is touched
    return float(ctx.params["x"])


def dump_environment(ctx: TrialContext) -> float:
    """Writes the worker process's environment to ``<data.out_dir>/env-<trial>.json`` (tests of
    what a worker inherits from the process that starts it). With ``data.barrier`` N, the trial
    then waits (up to 60 s) until N such files exist: N workers each run one of N trials, since
    a worker runs one trial at a time, so every worker's environment is read."""
    import json

    folder = Path(str(ctx.data["out_dir"]))
    out = folder / f"env-{ctx.number}.json"
    out.write_text(json.dumps(dict(os.environ), sort_keys=True))
    deadline = time.monotonic() + 60.0
    while len(list(folder.glob("env-*.json"))) < int(ctx.data.get("barrier", 0)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"dump_environment: fewer than {ctx.data['barrier']} workers came")
        time.sleep(0.05)
    return float(ctx.number)

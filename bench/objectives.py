"""Benchmark objectives."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hpo_core.objectives import TrialContext

_released = False


def barrier_sleep(ctx: TrialContext) -> float:
    """Sleeps ``data.sleep_seconds``; a worker's first trial first waits for ``data.go_file``.

    Every worker has then joined the study and holds a trial when the clock starts, so the
    scaling figure measures how workers share a study, not how fast 16 interpreters start.
    """
    global _released
    if not _released:
        go = Path(str(ctx.data["go_file"]))
        Path(f"{go}.ready.{os.getpid()}").touch()
        while not go.exists():
            time.sleep(0.005)
        _released = True
    time.sleep(float(ctx.data.get("sleep_seconds", 0.5)))
    return 0.0

"""A local worker's progress as it happens: its process is read line by line, each line kept in
the worker's own log file and passed on (to the Airflow task log), trial lines with the best
value so far, so a person following a task sees trials finish rather than one dict at the end.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TrialProgress", "run_streaming"]

# the worker's own lines (hpo_core.worker.worker), after the CLI's "<date> <time> <LEVEL>" prefix
_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+")
_COMPLETE = re.compile(r"^trial (\d+) COMPLETE value=(\S+) in ([\d.]+s)$")
_PRUNED = re.compile(r"^trial (\d+) PRUNED in ([\d.]+s) \((.*)\)$")
_FAILED = re.compile(r"^trial (\d+) FAILED in ([\d.]+s): (.*)$")


@dataclass
class TrialProgress:
    """Turns a worker's log lines into progress lines, keeping this worker's best value."""

    maximize: bool = True
    best: float | None = None
    best_trial: int | None = None

    def line(self, raw: str) -> str:
        text = _PREFIX.sub("", raw.rstrip())
        if found := _COMPLETE.match(text):
            number, value = int(found[1]), float(found[2])
            sign = 1 if self.maximize else -1
            if self.best is None or sign * value > sign * self.best:
                self.best, self.best_trial = value, number
            return (
                f"trial {number} finished: value {value:.6g} in {found[3]}; best so far "
                f"{self.best:.6g} (trial {self.best_trial}, this worker)"
            )
        if found := _PRUNED.match(text):
            return f"trial {found[1]} pruned in {found[2]} ({found[3]})"
        if found := _FAILED.match(text):
            return f"trial {found[1]} failed in {found[2]}: {found[3]}"
        return text


def run_streaming(
    command: Sequence[str],
    *,
    env: dict[str, str],
    log_path: Path,
    on_line: Callable[[str], None] | None,
    maximize: bool = True,
    timeout: float | None = None,
) -> tuple[int, bytes]:
    """Run ``command``: its stderr appended to ``log_path`` as it comes, each line also given to
    ``on_line`` as a progress line; returns the exit code and stdout. Past ``timeout`` seconds
    the process is killed and :class:`subprocess.TimeoutExpired` raised, as
    :func:`subprocess.run` does."""
    progress = TrialProgress(maximize=maximize)
    # stdout to a file, not a pipe: a chatty objective never blocks on a full pipe buffer
    with open(log_path, "ab") as log, tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.PIPE)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            process.kill()

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            assert process.stderr is not None
            for raw in process.stderr:
                log.write(raw)
                log.flush()
                if on_line is not None:
                    on_line(progress.line(raw.decode(errors="replace")))
            code = process.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if process.poll() is None:  # interrupted here (the task killed): not left behind
                process.kill()
                process.wait()
        if killed.is_set():
            raise subprocess.TimeoutExpired(list(command), timeout or 0.0)
        out.seek(0)
        return code, out.read()

"""Whether a trial's worker process is alive (the journal's dead-worker check, `hpo cleanup`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo_core.worker.worker import _alive, _process_start


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux's /proc")
def test_the_start_time_is_the_one_trials_recorded_before_psutil() -> None:
    """Clock ticks since boot, as /proc/PID/stat says: a worker of the previous version on the
    same host is still recognised as alive."""
    ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert _process_start(os.getpid()) == ticks


def test_a_live_process_with_its_start_time_is_alive_and_an_exited_one_is_not() -> None:
    me, start = os.getpid(), _process_start(os.getpid())
    assert start is not None and _alive(me, start) and _alive(me, None)
    assert not _alive(me, start + 1)  # a later process that reused the pid
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while _alive(child.pid, None) and time.monotonic() < deadline:  # exited, not yet reaped
        time.sleep(0.05)
    assert not _alive(child.pid, None), "a zombie counts as alive"
    child.wait()
    assert not _alive(child.pid, None) and _process_start(child.pid) is None

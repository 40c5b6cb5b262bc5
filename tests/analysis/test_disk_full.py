"""Disk full while a report is written: a clear one-line error, and the previous report intact.

The fault is real: the report folder is a tmpfs of a few hundred kB, filled up before the second
`hpo analyze`, so writes fail with ENOSPC. Where mounting is not allowed (not root), the same
write failure comes from RLIMIT_FSIZE (EFBIG), set on the `hpo` process alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import HPO, base_spec, run_hpo, small_disk

pytestmark = pytest.mark.slow


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_full_disk_fails_the_report_in_one_line_and_keeps_the_previous_one(
    journal_url: str, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    env = {"HPO_STORAGE_URL": journal_url}
    config = write_spec(base_spec(n_trials=12))
    done = run_hpo("sweep", "--config", str(config), "--workers", "1", "--no-tracking", env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "disk" / "report"
    with small_disk(tmp_path / "disk", 2048) as mounted:
        first = run_hpo("analyze", "test_study", "--out", str(out), env=env, timeout=300)
        assert first.returncode == 0, first.stderr
        before = _digests(out)
        assert "report.md" in before
        if mounted:  # fill what is left of the tmpfs
            with contextlib.suppress(OSError), (tmp_path / "disk" / "filler").open("wb") as fill:
                while True:
                    fill.write(b"\0" * 65536)
                    fill.flush()
            second = run_hpo("analyze", "test_study", "--out", str(out), env=env, timeout=300)
        else:
            second = subprocess.run(
                [HPO, "analyze", "test_study", "--out", str(out)],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=300,
                preexec_fn=_limit_file_size,
            )
        assert second.returncode == 1, second.stderr
        error = second.stderr.strip().splitlines()[-1]
        assert error.startswith("error: ") and "cannot write" in error, second.stderr
        assert ("No space left on device" if mounted else "File too large") in error
        assert "the previous file is unchanged" in error and "Traceback" not in second.stderr
        assert _digests(out) == before  # every earlier file byte for byte
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

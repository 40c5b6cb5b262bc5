"""The file lock local stores share (the journal's study lock, the MLflow store's creation)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hpo_core.storage import file_lock


def test_holders_take_turns_so_no_update_is_lost(tmp_path: Path) -> None:
    """Each holder reads a counter, waits, writes it plus one: without exclusion they overwrite
    each other. Threads hold separate open files, as processes do."""
    lock, counter = tmp_path / "sub" / "study.lock", tmp_path / "counter"
    counter.write_text("0")

    def bump() -> None:
        for _ in range(25):
            with file_lock(lock):
                value = int(counter.read_text())
                time.sleep(0.001)
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "100"
    assert lock.exists()  # left in place: unlinking a lock file splits its waiters

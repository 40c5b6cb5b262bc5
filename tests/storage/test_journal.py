"""The embedded journal survives torn writes: a cut anywhere in the last record, a garbage line in
the middle, a disk that fills up under a worker, and two processes repairing at once.

The journals are real: written by `hpo worker` (synthetic objective), then cut or filled.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from hpo_core.errors import StorageError
from hpo_core.storage import open_storage
from hpo_core.storage.journal import DurableJournalBackend, TornRecord, read_torn_records
from tests.helpers import HPO, base_spec, run_hpo, small_disk

STUDY = "journal_v1"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a journal holding STUDY with 4 complete trials, written by `hpo worker`."""
    folder = tmp_path_factory.mktemp("journal")
    config = folder / "spec.yaml"
    config.write_text(yaml.safe_dump(base_spec(study_name=STUDY, n_trials=4)))
    path = folder / "studies.journal"
    env = {"HPO_STORAGE_URL": f"journal://{path}", "HPO_HOME": str(folder / "home")}
    done = run_hpo("worker", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


def _last_record_start(data: bytes) -> int:
    return data.rindex(b"\n", 0, len(data) - 1) + 1


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _trials(path: Path, study: str = STUDY) -> list[tuple[Any, ...]]:
    """Every trial of ``study`` as opened through hpo_core, in comparable form."""
    handle = open_storage(f"journal://{path}", create=False)
    storage = handle.storage
    trials = storage.get_all_trials(storage.get_study_id_from_name(study))
    return [
        (t.number, t.state, t.params, t.values, t.intermediate_values, t.user_attrs) for t in trials
    ]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------- torn last record


def test_a_cut_at_every_byte_of_the_last_record_is_moved_aside_and_the_rest_opens(
    journal: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    start = _last_record_start(journal)
    last = journal[start:]
    assert json.loads(last)["op_code"] == 6  # the last trial's COMPLETE: a record of modest size
    expected = _trials(_write(tmp_path / "ref" / "studies.journal", journal[:start]))
    assert len(expected) == 4 and not (tmp_path / "ref" / "studies.journal.torn").exists()
    # k bytes of the last record made it to disk; with all but its newline it is still torn
    cuts = [(k, last[:k]) for k in range(1, len(last))]
    # a cut record that later got a newline (another record glued to it): a last line not JSON
    cuts += [(k, last[:k] + b"\n") for k in (1, len(last) // 2, len(last) - 2)]
    for i, (k, tail) in enumerate(cuts):
        path = _write(tmp_path / f"cut{i}" / "studies.journal", journal[:start] + tail)
        caplog.clear()
        assert _trials(path) == expected, k
        assert path.read_bytes() == journal[:start], k
        assert read_torn_records(f"{path}.torn") == [TornRecord(start, tail)], k
        said = f"journal {path}: moved a torn last record ({len(tail)} bytes at offset {start})"
        assert _warnings(caplog) == [f"{said} to {path}.torn"], k
    caplog.clear()
    path = _write(tmp_path / "whole" / "studies.journal", journal)
    assert len(_trials(path)) == 4 and path.read_bytes() == journal
    assert not _warnings(caplog) and not path.with_name("studies.journal.torn").exists()


def test_after_a_repair_writes_land_and_a_second_torn_record_is_added_to_the_torn_file(
    journal: bytes, tmp_path: Path
) -> None:
    start = _last_record_start(journal)
    path = _write(tmp_path / "studies.journal", journal[: start + 40])
    handle = open_storage(f"journal://{path}")
    handle.storage.set_study_user_attr(0, "after", 1)
    with path.open("ab") as torn:  # a writer died mid-record after this handle opened the file
        torn.write(journal[start : start + 25])
    handle.storage.set_study_user_attr(0, "later", 2)  # must not glue onto the torn bytes
    storage = open_storage(f"journal://{path}", create=False).storage
    assert storage.get_study_user_attrs(0) | {
        "after": 1,
        "later": 2,
    } == storage.get_study_user_attrs(0)
    assert [r.data for r in read_torn_records(f"{path}.torn")] == [
        journal[start : start + 40],
        journal[start : start + 25],
    ]


def test_two_processes_opening_a_torn_journal_at_once_move_it_once(
    journal: bytes, tmp_path: Path
) -> None:
    start = _last_record_start(journal)
    path = _write(tmp_path / "studies.journal", journal[: start + 50])
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()  # both see the torn tail, then wait for the lock: the second finds it repaired
    try:
        procs = [context.Process(target=_open_in_child, args=(path, ready)) for _ in range(2)]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=60)
        time.sleep(0.5)
    finally:
        lock.release()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert read_torn_records(f"{path}.torn") == [TornRecord(start, journal[start : start + 50])]
    assert path.read_bytes() == journal[:start]


def _open_in_child(path: Path, ready: Any) -> None:
    ready.put(os.getpid())
    os._exit(0 if len(_trials(path)) == 4 else 1)


# --------------------------------------------------------------------------- unreadable middle


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        (
            b'{"op_code": 4, "worker_id": "w", "study_\n',
            "not JSON (Invalid control character at column 41)",
        ),
        (b"\x80\x81 not text\n", "not UTF-8 text (invalid start byte)"),
    ],
)
def test_a_garbage_line_in_the_middle_is_one_error_line_and_the_file_is_left_alone(
    journal: bytes, tmp_path: Path, garbage: bytes, why: str
) -> None:
    lines = journal.splitlines(keepends=True)
    data = b"".join(lines[:10]) + garbage + b"".join(lines[10:])
    path = _write(tmp_path / "studies.journal", data)
    offset = len(b"".join(lines[:10]))
    result = run_hpo("status", STUDY, "--storage", f"journal://{path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: journal {path}: unreadable record at line 11 "), line
    assert f"(byte offset {offset}): {why}" in line, line
    assert line.endswith("back up the file, then delete or fix that line"), line
    assert path.read_bytes() == data and not path.with_name("studies.journal.torn").exists()
    with pytest.raises(StorageError, match=f"line 11 \\(byte offset {offset}\\)"):
        open_storage(f"journal://{path}", create=False)


# --------------------------------------------------------------------------- a full disk


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))


@pytest.mark.slow
def test_a_worker_that_fills_the_disk_fails_in_one_line_and_nothing_else_breaks(
    tmp_path: Path,
) -> None:
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(base_spec(study_name=STUDY, n_trials=60)))
    disk = tmp_path / "disk"
    path = disk / "studies.journal"
    env = {**os.environ, "HPO_STORAGE_URL": f"journal://{path}"}
    worker = [HPO, "worker", "--config", str(config)]
    with small_disk(disk, 256) as mounted:
        if mounted:  # leave 48 kB free: room for about 30 trials of the 60
            with (disk / "filler").open("wb") as filler:
                filler.write(b"\0" * (208 * 1024))
            full = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=120)
            (disk / "filler").unlink()
        else:
            full = subprocess.run(
                worker,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                preexec_fn=_limit_file_size,
            )
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
        errors = [ln for ln in full.stderr.splitlines() if ln.startswith("error:")]
        reason = "No space left on device" if mounted else "File too large"
        assert errors == [full.stderr.splitlines()[-1]], full.stderr
        # the record's write, or its lock file's, is what finds the disk full
        assert errors[0].startswith(f"error: journal {path}: cannot "), errors
        assert f"({reason})" in errors[0], errors
        assert ("free space on its disk" if mounted else "ulimit -f") in errors[0]
        reported = {
            int(ln.split("trial ")[1].split()[0]): float(ln.split("value=")[1].split()[0])
            for ln in full.stderr.splitlines()
            if " COMPLETE value=" in ln
        }
        assert 5 < len(reported) < 60, full.stderr
        assert path.read_bytes().endswith(b"\n")  # the partial record was cut off at once

        status = run_hpo("status", STUDY, env=env)
        assert status.returncode == 0 and f"{len(reported)} complete" in status.stdout, status
        again = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        handle = open_storage(f"journal://{path}", create=False)
        trials = handle.storage.get_all_trials(handle.storage.get_study_id_from_name(STUDY))
    complete = {t.number: t.value for t in trials if t.state.name == "COMPLETE"}
    assert len(complete) == 60 and not [t for t in trials if t.state.name == "RUNNING"]
    for number, value in reported.items():  # no trial lost that was reported complete
        assert complete[number] == pytest.approx(value, rel=1e-5)
    assert not path.with_name("studies.journal.torn").exists()


# --------------------------------------------------------------------------- Optuna's contract


def test_writes_the_records_optuna_writes_and_optuna_reads_what_it_relies_on(
    tmp_path: Path,
) -> None:
    logs = [{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}, {"a": "é"}]
    ours, theirs = tmp_path / "ours.journal", tmp_path / "theirs.journal"
    DurableJournalBackend(str(ours)).append_logs(logs)
    JournalFileBackend(str(theirs)).append_logs(logs)
    assert ours.read_bytes() == theirs.read_bytes()
    # a partial last line is skipped; a bad line with one after it raises ValueError
    theirs.write_bytes(ours.read_bytes() + b'{"op_co')
    assert list(JournalFileBackend(str(theirs)).read_logs(0)) == logs
    theirs.write_bytes(b'{"op_co\n' + ours.read_bytes())
    with pytest.raises(ValueError):
        list(JournalFileBackend(str(theirs)).read_logs(0))

"""Storage calls ride out a lost connection: which errors are retried, the waits, the budget and
the lines a user sees (a real server restart: tests/worker/test_faults.py)."""

from __future__ import annotations

import itertools
import logging
import time

import pytest
import sqlalchemy.exc

from hpo_core.storage.resilient import is_disconnect, retry_storage


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits, on a clock that moves only by them."""
    clock, waits = [0.0], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", sleep)
    return waits


def _down(*_: object) -> None:
    raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_waits_double_up_to_30s_and_stop_within_the_budget(slept: list[float]) -> None:
    with pytest.raises(sqlalchemy.exc.OperationalError):
        retry_storage(_down, "a test", budget=100)
    assert slept == [1, 2, 4, 8, 16, 30, 30]  # a third 30 s wait would end past 100 s


def test_says_what_failed_and_when_it_is_back(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    calls = iter([_down, _down, lambda: "done"])
    with caplog.at_level(logging.WARNING):
        assert retry_storage(lambda: next(calls)(), "reserving a trial", budget=300) == "done"
    assert [r.getMessage() for r in caplog.records] == [
        "storage unreachable during reserving a trial (OperationalError: (builtins.Exception) "
        "server closed the connection); retry 1 in 1s",
        "storage unreachable during reserving a trial (OperationalError: (builtins.Exception) "
        "server closed the connection); retry 2 in 2s",
        "storage reachable again: reserving a trial succeeded after 3 tries",
    ]
    assert slept == [1, 2]


def test_other_errors_and_a_spent_budget_are_not_retried(slept: list[float]) -> None:
    with pytest.raises(ValueError):
        retry_storage(lambda: int("x"), "a test", budget=300)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        retry_storage(_down, "a test", budget=0)
    assert slept == []


def test_an_answer_from_the_server_is_not_a_disconnect_whatever_came_before_it() -> None:
    """SQLAlchemy replaces a stale pooled connection inside its except block, so the server's
    answer carries that disconnect as its context: it is still an answer."""
    import optuna.exceptions

    def chain(*errors: BaseException) -> BaseException:
        for earlier, later in itertools.pairwise(errors):
            later.__context__ = earlier
        return errors[-1]

    closed = sqlalchemy.exc.OperationalError("ping", {}, Exception("server closed"))
    duplicate = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_disconnect(
        chain(closed, duplicate, optuna.exceptions.DuplicatedStudyError("study s exists"))
    )
    assert not is_disconnect(chain(closed, optuna.exceptions.UpdateFinishedTrialError("done")))
    failed = optuna.exceptions.StorageInternalError("commit failed")
    failed.__cause__ = sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("server closed"))
    assert is_disconnect(failed)

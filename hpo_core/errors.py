"""The project's own error types.

Every mistake a user can make surfaces as an :class:`HpoError` whose message is one line (or one
line per problem) naming the field and the fix. The CLI prints these without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DataError",
    "HpoError",
    "ObjectiveError",
    "SpecError",
    "SpecIssue",
    "StorageError",
    "StudyError",
    "StudyStopped",
    "TrialPreempted",
]


class HpoError(Exception):
    """Base class of every error a user can cause; the CLI shows it as ``error: <message>``."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a sweep spec: where it is and what to do about it."""

    path: str  # dotted field path, e.g. ``param_ranges.depth.high``; "" for the whole file
    message: str  # what is wrong and how to fix it

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        # one issue, one line: a key or value quoted from the file may hold a line break
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class SpecError(HpoError):
    """A sweep spec that cannot be used; carries every problem found, not just the first."""

    def __init__(self, issues: Iterable[SpecIssue], *, source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + str(issue) for issue in self.issues))


class StorageError(HpoError):
    """The study storage is missing, unreachable or refused the operation."""


class StudyError(HpoError):
    """A study that does not exist, or exists with a different spec."""


class StudyStopped(StudyError):
    """The study's stop flag is set: workers refuse to start (`hpo resume` clears it)."""


class ObjectiveError(HpoError):
    """An objective that cannot be resolved or imported."""


class DataError(HpoError):
    """Training data, labels or centroids that cannot be used; the message names the file."""


class TrialPreempted(Exception):
    """A trial stopped because its machine is going away (SIGTERM, ``hpo stop --now``), after
    saving its state: the worker records it as lost and re-queues it to resume. Not an
    :class:`HpoError`: nothing is wrong with the trial or the user's input."""

    def __init__(self, cause: str, *, epoch: int | None = None, batch: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.epoch = epoch  # epochs completed when it stopped
        self.batch = batch  # batches of the next epoch done

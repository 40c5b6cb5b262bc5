"""Trial checkpoints: saved through Optuna's artifact store, found again by a re-queued trial.

A trial's state (for the shared training loop: weights, optimizer, scheduler, random states,
epoch, best-so-far and history) is written with ``torch.save`` and uploaded with
``optuna.artifacts.upload_artifact`` into a folder every worker of the study reaches
(``worker.checkpoint_dir``, default ``$HPO_HOME/artifacts``; a mounted volume in pods), one
sub-folder per study. The trial then points at it with the user attribute
``sweepflow.checkpoint`` = ``{"epoch", "artifact_id", "origin"}``, ``origin`` being the number
of the first trial of its retry chain (Optuna's ``failed_trial``, else its own). A lost trial's
copy inherits that attribute (:func:`hpo_core.worker.lost.lose_trial`), so it loads its
parent's checkpoint, and checks that the origin is its own.

Each trial family keeps one file, its latest: a save removes the file the previous pointer
named once the new pointer is stored, so a crash between the two leaves the older file, never
a pointer to nothing. A file is complete or absent: it is written under a temporary name in the
same folder and renamed into place (Optuna's ``FileSystemArtifactStore`` writes in place).
States load with ``torch.load(weights_only=True)``: a checkpoint file cannot run code, whoever
could write into the folder. When a trial ends its checkpoint is deleted, except for the best
``worker.keep_checkpoints`` complete trials.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from hpo_core.errors import StorageError
from hpo_core.files import fsync_folder, partial_file
from hpo_core.storage.optuna_internals import study_storage, trial_id_of
from hpo_core.storage.urls import ENV_HOME
from hpo_core.worker.lost import ATTR_CHECKPOINT, ATTR_LOST_CAUSE

if TYPE_CHECKING:
    from hpo_core.spec import SweepSpec

__all__ = ["TrialCheckpoints", "checkpoint_folder", "origin_number"]

_log = logging.getLogger(__name__)

_PARTIAL = ".partial-"  # a file being written; never a checkpoint
_ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checkpoint_folder(spec: SweepSpec, study_name: str) -> Path:
    """Where a study's checkpoints live: ``worker.checkpoint_dir`` (relative to the worker's
    working directory) or ``$HPO_HOME/artifacts``, then the study name."""
    base = spec.worker.checkpoint_dir or str(Path(os.environ.get(ENV_HOME) or ".hpo") / "artifacts")
    return Path(base).expanduser() / study_name


def origin_number(trial: FrozenTrial) -> int:
    """The number of the first trial of a retry chain (Optuna's ``failed_trial``)."""
    origin = trial.system_attrs.get("failed_trial")
    return origin if isinstance(origin, int) and not isinstance(origin, bool) else trial.number


def _pointer(user_attrs: dict[str, Any]) -> dict[str, Any] | None:
    """A trial's ``sweepflow.checkpoint``, if it is one (anything else is ignored: the artifact
    id becomes a file name, so only the UUIDs Optuna makes pass)."""
    value = user_attrs.get(ATTR_CHECKPOINT)
    if not isinstance(value, dict):
        return None
    epoch, origin, artifact_id = value.get("epoch"), value.get("origin"), value.get("artifact_id")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, origin))
    if not ints or not isinstance(artifact_id, str) or not _ARTIFACT_ID.fullmatch(artifact_id):
        return None
    return value


class _AtomicFileStore(FileSystemArtifactStore):
    """Optuna's file store, with files that are complete or absent."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not _ARTIFACT_ID.fullmatch(artifact_id):
            raise ValueError(f"artifact id {artifact_id!r} is not a UUID")
        target = self.folder / artifact_id
        source = Path(getattr(content_body, "name", "") or "")
        if source.parent == self.folder and source.name.startswith(_PARTIAL):
            # Our own complete temporary file in this folder: renamed, not copied, so a
            # multi-gigabyte state is written once.
            os.replace(source, target)
        else:
            partial = partial_file(
                self.folder, lambda out: shutil.copyfileobj(content_body, out), prefix=_PARTIAL
            )
            os.replace(partial, target)
        fsync_folder(self.folder)


class TrialCheckpoints:
    """The checkpoints of one study's trials, in ``folder``. ``every`` is the spec's
    ``worker.checkpoint_every`` (epochs between saves), ``keep`` its ``keep_checkpoints``."""

    def __init__(self, folder: Path, *, every: int | None, keep: int = 0) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(prefix=_PARTIAL, dir=folder):
                pass  # can write here, now rather than at the first epoch's end
        except OSError as exc:
            raise StorageError(
                f"worker.checkpoint_dir: cannot write checkpoints in {folder}: "
                f"{exc.strerror or exc}; give a folder every worker can write (a mounted "
                "volume in pods) or set worker.checkpoint_every: null to run without them"
            ) from None
        self.folder = folder
        self.every = every
        self.keep = keep
        self.store = _AtomicFileStore(folder)

    def save(self, trial: optuna.Trial, state: dict[str, Any]) -> None:
        """Write ``state`` (a dict with an int ``epoch``: the last completed epoch) and point
        the trial at it; then remove the file the trial pointed at before."""
        import torch

        epoch = state.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise ValueError(
                f"a checkpoint state needs an int 'epoch' (the last completed epoch), "
                f"but got {epoch!r}"
            )
        partial = partial_file(self.folder, lambda out: torch.save(state, out), prefix=_PARTIAL)
        try:
            artifact_id = upload_artifact(
                artifact_store=self.store, file_path=partial, study_or_trial=trial
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)  # left only when the upload failed
        frozen = trial.storage.get_trial(trial_id_of(trial))
        previous = _pointer(frozen.user_attrs)
        pointer = {"epoch": epoch, "artifact_id": artifact_id, "origin": origin_number(frozen)}
        trial.set_user_attr(ATTR_CHECKPOINT, pointer)
        if previous is not None and previous["artifact_id"] != artifact_id:
            self._remove(previous["artifact_id"])

    def load(self, trial: optuna.Trial) -> dict[str, Any] | None:
        """The state the trial (or the trial it was copied from) saved last; None if none."""
        import torch

        frozen = trial.storage.get_trial(trial_id_of(trial))
        pointer = _pointer(frozen.user_attrs)
        if pointer is None:
            return None
        origin = origin_number(frozen)
        if pointer["origin"] != origin:
            _log.warning(
                "trial %d: its checkpoint belongs to trial %d's retry chain, not to trial %d's; "
                "training from the start",
                trial.number,
                pointer["origin"],
                origin,
            )
            return None
        try:
            with self.store.open_reader(pointer["artifact_id"]) as source:
                state: dict[str, Any] = torch.load(source, map_location="cpu", weights_only=True)
        except ArtifactNotFound:
            _log.warning(
                "trial %d: the checkpoint of epoch %d (%s) is not in %s; training from the start",
                trial.number,
                pointer["epoch"],
                pointer["artifact_id"],
                self.folder,
            )
            return None
        except Exception as exc:
            raise RuntimeError(
                f"checkpoint {pointer['artifact_id']} (trial {origin}, epoch {pointer['epoch']}) "
                f"in {self.folder} cannot be loaded with weights_only=True: "
                f"{str(exc).splitlines()[0]}; a state holds tensors and plain containers only"
            ) from exc
        _log.info(
            "trial %d resumes from the checkpoint of epoch %d (trial %d's)",
            trial.number,
            pointer["epoch"],
            origin,
        )
        return state

    def discard_finished(self, study: optuna.Study, trial_id: int) -> None:
        """After a trial ended: delete its checkpoint unless it is among the best ``keep``
        complete trials, and delete the ones it pushed out of them. A lost trial's checkpoint
        is left to the copy that resumes from it."""
        trial = study_storage(study).get_trial(trial_id)
        pointer = _pointer(trial.user_attrs)
        if pointer is None or ATTR_LOST_CAUSE in trial.user_attrs:
            return
        if self.keep == 0 or trial.state != TrialState.COMPLETE:
            self._remove(pointer["artifact_id"])
            return
        trials = study.get_trials(deepcopy=False)
        ranked = sorted(
            (
                t
                for t in trials
                if t.state == TrialState.COMPLETE and _pointer(t.user_attrs) is not None
            ),
            key=lambda t: cast(float, t.value),
            reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE,
        )
        # Every finish runs this, so only trials pushed out of the best `keep` since the last
        # finish can still have a file: at most one per trial that finished meanwhile, which is
        # at most one per running worker. A window, not the whole tail: one removal per trial.
        window = 1 + sum(t.state == TrialState.RUNNING for t in trials)
        for pushed_out in ranked[self.keep : self.keep + window]:
            self._remove(_pointer(pushed_out.user_attrs)["artifact_id"])  # type: ignore[index]

    def _remove(self, artifact_id: str) -> None:
        with contextlib.suppress(ArtifactNotFound):
            self.store.remove(artifact_id)

"""One worker: joins a study and runs trials until the study-wide budget is used.

The budget is exact across any number of workers, including restarted ones. Optuna's
``MaxTrialsCallback`` checks the count after a trial, so parallel workers overshoot (4 workers
capped at 40 finished 43). Here a worker reserves its slot before the trial exists: under a
per-study lock (a PostgreSQL advisory lock, or a file lock for local storages) it counts the
finished and running trials and creates its own trial only if that count is below ``n_trials``.
A failed trial gives its slot back, so failures are retried as new trials; a worker that finds
every slot taken by running trials waits, because one of them may still fail.

Dead workers: on PostgreSQL each trial sends heartbeats, and a trial whose heartbeat is older
than the grace period (or that never sent one) is lost. The embedded journal storage has no
heartbeat; there a trial records its worker's host, pid and process start time, and a worker on
the same host loses a RUNNING trial whose process is gone. The journal is a local file, so every
worker sharing it is on the same host and this check is complete. A lost trial is FAIL with its
``lost_cause``, re-queued, and not counted as failed (``hpo_core.worker.lost``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import optuna
import psutil
from optuna.trial import TrialState

from hpo_core.errors import TrialPreempted
from hpo_core.objectives import TrialContext, require_objective_spec, resolve_objective
from hpo_core.spec import LoadedSpec
from hpo_core.storage import StorageHandle, open_storage
from hpo_core.storage.optuna_internals import study_storage, trial_for, trial_id_of
from hpo_core.storage.resilient import ResilientRDBStorage, retry_storage
from hpo_core.study import (
    ATTR_N_TRIALS,
    ATTR_STOP,
    ATTR_WARM_START,
    SweepStudy,
    carried_count,
    create_study,
    load_study,
    require_running,
    stop_flag,
    suggest_params,
)
from hpo_core.worker.checkpoints import TrialCheckpoints, checkpoint_folder
from hpo_core.worker.lost import ATTR_FAIL_REASON, ATTR_WORKER, lose_trial

__all__ = ["WorkerReport", "run_worker"]

_log = logging.getLogger(__name__)

ATTR_PRUNE_REASON = "prune_reason"  # why a trial was pruned: the pruner's step, or a NaN loss
ATTR_FAIL_TRACEBACK = "fail_traceback"


@dataclass
class WorkerReport:
    """What one worker did, and why it stopped."""

    worker_id: str
    study_name: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    stop_reason: str = ""
    elapsed_s: float = 0.0
    trial_numbers: list[int] = field(default_factory=list)
    lost: int = 0  # preempted here (SIGTERM, `hpo stop --now`), re-queued to resume
    # How this worker shared the study: waits for and holds of the study lock per reservation
    # (ms: p50, p95, max) and SQL statements sent (RDB storages), for the scale model
    lock_wait_ms: dict[str, float] = field(default_factory=dict)
    lock_hold_ms: dict[str, float] = field(default_factory=dict)
    reservations: int = 0
    db_statements: int = 0
    tracking_wait_s: float = 0.0  # waited at exit for the queued MLflow trial runs

    @property
    def trials(self) -> int:
        return self.complete + self.pruned + self.failed + self.lost


class _Stop:
    """Why a reservation gave no trial; ``final`` says whether to leave or wait and retry."""

    def __init__(self, reason: str, *, final: bool) -> None:
        self.reason = reason
        self.final = final


class _Signals:
    """SIGINT (Ctrl-C): finish the current trial, then stop. SIGTERM (an evicted pod, a spot
    instance's preemption notice): the trial saves a checkpoint at its next batch boundary and
    is re-queued as lost, then the worker stops; an objective that never asks
    (:meth:`TrialContext.preempted`) runs its trial to the end, as on SIGINT. A second signal
    of either kind: stop now."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.preempt: str | None = None  # the running trial's lost_cause once SIGTERM came
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(name)
        self.requested = name
        if signum == signal.SIGTERM:
            self.preempt = f"preempted: {name}"
            _log.warning(
                "%s received: the running trial saves a checkpoint at its next batch and is "
                "re-queued, then the worker stops (send it again to stop at once)",
                name,
            )
            return
        _log.warning(
            "%s received: finishing the current trial, then stopping "
            "(send it again to stop at once)",
            name,
        )


def run_worker(
    source: LoadedSpec | str,
    storage_url: str,
    *,
    timeout: float | None = None,
    stop_file: str | Path | None = None,
    worker_id: str | None = None,
    max_trials: int | None = None,
    until: int | None = None,
) -> WorkerReport:
    """Run trials of a study until the budget is used, ``timeout`` seconds pass, ``stop_file``
    appears, the study's stop flag is set, or a signal asks to stop.

    ``source`` is a spec file's contents (the study is created from it if it does not exist, and
    joined if its stored spec matches) or a study name (joined, with its stored spec). Either
    way the worker runs the stored spec. A study whose stop flag is set is not joined:
    :class:`StudyStopped` says who stopped it.

    ``max_trials`` caps this worker alone (for smoke runs); the study budget applies regardless.
    ``until`` stops the worker once the study has that many finished trials (a checkpoint of the
    mid-sweep gate: every worker stops there, the gate decides, workers are started again).
    """
    if isinstance(source, str):
        probe = open_storage(storage_url, create=False)
        try:
            loaded = load_study(source, probe).loaded
        finally:
            probe.dispose()
    else:
        loaded = source
    spec = loaded.spec
    # fail before touching the study; the deployment's allowlist first, before any import
    require_objective_spec(spec, source=loaded.source)
    resolve_objective(spec.objective)
    checkpoints = (
        None
        if spec.worker.checkpoint_every is None
        else TrialCheckpoints(
            checkpoint_folder(spec, spec.study_name),
            every=spec.worker.checkpoint_every,
            keep=spec.worker.keep_checkpoints,
        )
    )
    # The heartbeat settings are the stored spec's: a file with others is refused on joining.
    # No stale-trial callback: Optuna runs it only from optimize(); workers lose stale trials
    # themselves (_lose_dead_trials), recording why.
    handle = open_storage(
        storage_url,
        heartbeat_interval=spec.worker.heartbeat_interval,
        grace_period=spec.worker.grace_period,
    )
    if handle.kind in ("postgresql", "sqlite"):
        handle.count_statements()
    try:
        sweep = create_study(loaded, handle)
        require_running(sweep)
        objective = resolve_objective(sweep.spec.objective)
        worker = _Worker(sweep, objective, worker_id=worker_id, until=until)
        worker.checkpoints = checkpoints
        if timeout is None:  # the spec's, unless the command line says otherwise
            timeout = sweep.spec.worker.timeout
    except BaseException:
        handle.dispose()
        raise
    signals = _Signals()
    signals.install()
    try:
        report = worker.loop(
            timeout=timeout,
            stop_file=Path(stop_file) if stop_file else None,
            signals=signals,
            max_trials=max_trials,
        )
    finally:
        signals.restore()
        waited = time.monotonic()
        if worker.tracker is not None:  # the trial runs still queued; seconds when preempted
            worker.tracker.drain(preempted=bool(worker.signals.preempt or worker.stop_now))
        waited = time.monotonic() - waited
        handle.dispose()
    report.tracking_wait_s = round(waited, 3)
    return report


class _Worker:
    def __init__(
        self,
        sweep: SweepStudy,
        objective: Any,
        *,
        worker_id: str | None,
        until: int | None = None,
    ) -> None:
        self.sweep = sweep
        self.until = until
        self.study = sweep.study
        self.handle: StorageHandle = sweep.handle
        self.spec = sweep.spec
        self.objective = objective
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = worker_id or f"{self.host}:{self.pid}"
        from hpo_core.worker.gpus import visible_gpus

        self.identity = {
            "id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "pid_start": _process_start(self.pid),
            # the devices this worker trains on (its CUDA_VISIBLE_DEVICES, else nvidia-smi's
            # list; [] on the CPU): GPU-hours of a trial are its duration x len(gpus)
            "gpus": visible_gpus(),
        }
        self.max_failed = self.spec.worker.max_failed_trials or max(self.spec.n_trials, 10)
        self.checkpoints: TrialCheckpoints | None = None
        self.signals = _Signals()  # the loop's, once it runs
        self.stop_now: str | None = None  # set by the heartbeat thread on `hpo stop --now`
        self._last_stale_check = -math.inf
        self.tracker: Any = None
        if self.study.user_attrs.get("sweepflow.mlflow_parent_run"):
            from hpo_core.tracking import Tracker  # mlflow only when the sweep is tracked

            self.tracker = Tracker.for_study(sweep)
            if self.tracker is not None:
                self.tracker.start_background()

    # -- the loop ------------------------------------------------------------------------------

    def loop(
        self,
        *,
        timeout: float | None,
        stop_file: Path | None,
        signals: _Signals,
        max_trials: int | None,
    ) -> WorkerReport:
        report = WorkerReport(worker_id=self.worker_id, study_name=self.sweep.name)
        self.signals = signals
        started = time.monotonic()
        waiting_since: float | None = None
        _log.info(
            "worker %s joined study %s (%s)",
            self.worker_id,
            self.sweep.name,
            self.handle.masked_url,
        )
        while True:
            reason = self._outside_stop(started, timeout, stop_file, signals, report, max_trials)
            if reason:
                report.stop_reason = reason
                break
            retry_storage(self._lose_dead_trials, "checking for dead workers")
            slot = retry_storage(self._reserve, "reserving a trial")
            if isinstance(slot, _Stop):
                if slot.final:
                    report.stop_reason = slot.reason
                    break
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    _log.info("all trial slots taken by running trials; waiting in case one fails")
                time.sleep(self.spec.worker.poll_interval)
                continue
            waiting_since = None
            self._run_trial(slot, report)
        report.elapsed_s = time.monotonic() - started
        _lock_figures(self.handle, report)
        _log.info(
            "worker %s stopped (%s): %d complete, %d pruned, %d failed in %.1fs",
            self.worker_id,
            report.stop_reason,
            report.complete,
            report.pruned,
            report.failed,
            report.elapsed_s,
        )
        return report

    def _outside_stop(
        self,
        started: float,
        timeout: float | None,
        stop_file: Path | None,
        signals: _Signals,
        report: WorkerReport,
        max_trials: int | None,
    ) -> str | None:
        if signals.requested:
            return f"{signals.requested} received"
        if stop_file is not None and stop_file.exists():
            return f"stop file {stop_file} present"
        if timeout is not None and time.monotonic() - started >= timeout:
            return f"timeout of {timeout:g}s reached"
        if max_trials is not None and report.trials >= max_trials:
            return f"worker limit of {max_trials} trials reached"
        return None

    def _reserve(self) -> optuna.Trial | _Stop:
        """Take one slot of the study budget, atomically across workers, or say why not."""
        with self.handle.reservation(
            self.sweep.name, self.sweep.study_id, (ATTR_N_TRIALS, ATTR_STOP, ATTR_WARM_START)
        ) as snapshot:
            attrs, counts = snapshot.attrs, snapshot.counts
            flag = stop_flag(attrs)
            if flag is not None:
                return _Stop(f"study stop flag set: {flag.reason}", final=True)
            budget = int(attrs.get(ATTR_N_TRIALS, self.spec.n_trials))
            # trials carried in by a warm start are evidence, not this sweep's work: the budget
            # and the checkpoints (`until`) count the study's own
            finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) - carried_count(attrs)
            if finished >= budget:
                return _Stop(f"study budget of {budget} trials used", final=True)
            if self.until is not None and finished >= self.until:
                return _Stop(f"checkpoint of {self.until} finished trials reached", final=True)
            if self.until is not None:
                budget = min(budget, self.until)
            # a trial lost to the infrastructure says nothing about the objective
            failed = counts.get("FAIL", 0) - snapshot.lost
            if failed >= self.max_failed:
                lost = f", not counting {snapshot.lost} lost" if snapshot.lost else ""
                return _Stop(
                    f"{failed} failed trials (limit {self.max_failed}){lost}; fix the cause, "
                    "then restart the workers",
                    final=True,
                )
            if finished + counts.get("RUNNING", 0) >= budget:
                return _Stop("all slots running", final=False)
            trial: optuna.Trial | None = None
            if counts.get("WAITING", 0):
                # Queued trials (retries, `hpo enqueue`): ask() pops one of them.
                with warnings.catch_warnings():
                    # Optuna warns that heartbeats are meant for optimize(); we run our own.
                    warnings.simplefilter("ignore", UserWarning)
                    trial = self.study.ask()
                trial_id = trial_id_of(trial)
            else:
                # Only the row that takes the slot is created under the lock; building the Trial
                # (reads, sampler setup) happens after it, so workers queue on one INSERT.
                # Through the study's own storage: Optuna wraps an RDB in a cache that must see it.
                trial_id = study_storage(self.study).create_new_trial(self.sweep.study_id)
            snapshot.tag_trial(trial_id, ATTR_WORKER, self.identity)
        if self.handle.has_heartbeat:
            # The first beat at once, before the sampler runs: a RUNNING trial with no heartbeat
            # after the grace period is taken for an orphan of a lost connection and failed.
            self.handle.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        return trial if trial is not None else trial_for(self.study, trial_id)

    def _run_trial(self, trial: optuna.Trial, report: WorkerReport) -> None:
        began = time.monotonic()
        report.trial_numbers.append(trial.number)
        state = TrialState.FAIL
        value: float | None = None
        detail = ""
        try:
            with self._heartbeat(trial):
                params = suggest_params(trial, self.spec)
                ctx = TrialContext(
                    trial=trial,
                    params=params,
                    spec=self.spec,
                    data=self.spec.data,
                    checkpoints=self.checkpoints,
                    stop_request=lambda: self.signals.preempt or self.stop_now,
                )
                result = self.objective(ctx)
            value = _as_value(result)
            if value is None:
                detail = f"objective returned {result!r}, not a finite number"
                self._record_failure(trial, detail, None)
            else:
                state = TrialState.COMPLETE
        except optuna.TrialPruned as exc:
            state = TrialState.PRUNED
            detail = str(exc)
        except FloatingPointError as exc:  # a NaN/inf loss: the configuration diverged
            state = TrialState.PRUNED
            detail = f"diverged: {exc}".splitlines()[0][:500]
        except TrialPreempted as exc:
            self._preempted(trial, exc, report)
            return
        except KeyboardInterrupt:
            if self.signals.preempt:  # the machine is going away: not the trial's failure
                cause = f"{self.signals.preempt}, then a second signal before its checkpoint"
                lose_trial(self.study, trial_id_of(trial), cause, max_retry=None)
                raise
            self._record_failure(trial, "interrupted by a second stop signal", None)
            self._tell(trial, TrialState.FAIL, None)
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # The objective's report() found its trial finished by another process (a peer's
            # dead-worker check, `hpo cleanup`): whatever it would return is lost.
            self._discarded(trial, "the run was cut short")
            report.failed += 1
            return
        except Exception as exc:  # an objective may raise anything; the worker must go on
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            self._record_failure(trial, detail, traceback.format_exc())
            if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:
                _free_memory()  # the next trial starts from an empty cache
        if state == TrialState.PRUNED and detail:
            with contextlib.suppress(Exception):
                trial.set_user_attr(ATTR_PRUNE_REASON, detail)
        self._tell(trial, state, value)
        if self.checkpoints is not None:
            try:  # disk space, not the trial's result: a failure here is only logged
                self.checkpoints.discard_finished(self.study, trial_id_of(trial))
            except Exception as exc:
                _log.warning("trial %d: its checkpoint was not removed: %s", trial.number, exc)
        if self.tracker is not None:
            with contextlib.suppress(Exception):  # logging never fails a trial
                stored = study_storage(self.study).get_trial(trial_id_of(trial))
                self.tracker.queue_trial(self.sweep, stored)  # logged by a background thread
        seconds = time.monotonic() - began
        if state == TrialState.COMPLETE:
            report.complete += 1
            _log.info("trial %d COMPLETE value=%.6g in %.1fs", trial.number, value, seconds)
        elif state == TrialState.PRUNED:
            report.pruned += 1
            _log.info("trial %d PRUNED in %.1fs (%s)", trial.number, seconds, detail)
        else:
            report.failed += 1
            _log.warning("trial %d FAILED in %.1fs: %s", trial.number, seconds, detail)

    def _preempted(self, trial: optuna.Trial, exc: TrialPreempted, report: WorkerReport) -> None:
        """The trial stopped at a batch boundary with its checkpoint saved: lose it, so that its
        copy resumes there. No retry limit: each preemption saves its progress first."""
        if not lose_trial(self.study, trial_id_of(trial), exc.cause, max_retry=None):
            self._discarded(trial, f"{exc.cause} at epoch {exc.epoch}")
            report.failed += 1
            return
        report.lost += 1
        _log.warning(
            "trial %d %s after %s epoch(s) and %s batch(es) of the next%s; re-queued to resume",
            trial.number,
            exc.cause,
            exc.epoch,
            exc.batch,
            " with a checkpoint" if self.checkpoints is not None else " (checkpoints are off)",
        )

    def _tell(self, trial: optuna.Trial, state: TrialState, value: float | None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if state == TrialState.COMPLETE:
                stored = self.study.tell(trial, value, skip_if_finished=True)
            else:
                stored = self.study.tell(trial, state=state, skip_if_finished=True)
        if stored.state != state:
            # Another process failed this trial meanwhile (a dead-worker check, `hpo cleanup`):
            # Optuna keeps the first outcome, so this one is lost; say so, with the value.
            self._discarded(
                trial, f"value={value:.6g}" if value is not None else f"state {state.name}"
            )

    def _discarded(self, trial: optuna.Trial, result: str) -> None:
        stored = study_storage(self.study).get_trial(trial_id_of(trial))
        _log.warning(
            "trial %d: result discarded (%s): the trial was already %s by another process (%s)",
            trial.number,
            result,
            stored.state.name,
            stored.user_attrs.get(ATTR_FAIL_REASON) or "no reason recorded",
        )

    def _record_failure(self, trial: optuna.Trial, reason: str, trace: str | None) -> None:
        with contextlib.suppress(Exception):  # recording the reason must not mask the failure
            trial.set_user_attr(ATTR_FAIL_REASON, reason)
            if trace:
                trial.set_user_attr(ATTR_FAIL_TRACEBACK, trace[-4000:])

    @contextlib.contextmanager
    def _heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """While the trial runs: its heartbeats (PostgreSQL), and a look at the study's stop flag
        for `hpo stop --now` at each beat (each poll interval on the journal, which has none)."""
        storage = self.handle.storage
        beats = self.handle.has_heartbeat
        interval = self.spec.worker.heartbeat_interval if beats else self.spec.worker.poll_interval
        stop = threading.Event()
        self.stop_now = None

        def beat() -> None:
            while not stop.wait(interval):  # the first beat was recorded by the reservation
                try:
                    if beats:
                        storage.record_heartbeat(trial_id_of(trial))  # type: ignore[attr-defined]
                    flag = stop_flag(storage.get_study_user_attrs(self.sweep.study_id))
                    if flag is not None and flag.now:
                        self.stop_now = "preempted: hpo stop --now"
                except Exception as exc:  # a missed beat is retried; the trial goes on
                    _log.warning("heartbeat for trial %d failed: %s", trial.number, exc)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- dead workers --------------------------------------------------------------------------

    def _lose_dead_trials(self) -> None:
        # A dead worker is only noticed after a grace period anyway; checking more often than
        # once a heartbeat interval costs a query per trial and finds nothing sooner.
        now = time.monotonic()
        if now - self._last_stale_check < self.spec.worker.heartbeat_interval:
            return
        self._last_stale_check = now
        retries = self.spec.worker.stale_trial_retries
        storage = self.handle.storage
        if isinstance(storage, ResilientRDBStorage) and self.handle.has_heartbeat:
            for trial_id, cause in storage.stale_trials(self.sweep.study_id).items():
                lose_trial(self.study, trial_id, cause, max_retry=retries)
            return
        if self.handle.kind != "journal":
            return
        for trial in storage.get_all_trials(
            self.sweep.study_id, deepcopy=False, states=(TrialState.RUNNING,)
        ):
            owner = trial.user_attrs.get(ATTR_WORKER) or {}
            if owner.get("host") != self.host or owner.get("pid") in (None, self.pid):
                continue
            pid = int(owner["pid"])
            if _alive(pid, owner.get("pid_start")):
                continue
            cause = f"dead worker: its process {pid} on {self.host} is gone"
            lose_trial(self.study, trial_id_of(trial), cause, max_retry=retries)


def _lock_figures(handle: StorageHandle, report: WorkerReport) -> None:
    times = list(handle.lock_times)
    report.reservations, report.db_statements = len(times), handle.statements
    if not times:
        return
    for index, out in ((0, report.lock_wait_ms), (1, report.lock_hold_ms)):
        values = sorted(1000 * t[index] for t in times)
        out.update(
            p50=round(values[len(values) // 2], 3),
            p95=round(values[min(len(values) - 1, int(0.95 * len(values)))], 3),
            max=round(values[-1], 3),
        )


def _as_value(result: Any) -> float | None:
    try:
        value = float(result)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _process_start(pid: int) -> int | None:
    """When the process started, in hundredths of a second since boot (what Linux's
    /proc/PID/stat gives in clock ticks, and what trials recorded before psutil read it): with
    the pid it names one process, not a later one that reused the pid. None if there is none."""
    try:
        created: float = psutil.Process(pid).create_time()
        boot: float = psutil.boot_time()
    except psutil.Error:
        return None
    # psutil gives seconds since the epoch (boot time + time since boot); the boot time moves
    # with the wall clock, time since boot does not, and a worker started before a clock step
    # must still match its own record
    return round((created - boot) * 100)


def _alive(pid: int, start: int | None) -> bool:
    try:
        if psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False  # a zombie has exited; only its parent has not reaped it yet
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists, and that is all we learn
        return True
    return start is None or _process_start(pid) == start


def _free_memory() -> None:
    """After an out-of-memory trial: collect, and empty CUDA's cache when torch is loaded."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()

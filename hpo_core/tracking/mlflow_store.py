"""MLflow as the record of a sweep: one parent run per sweep, one child run per trial.

The tracking URI comes from ``--tracking-uri`` or ``MLFLOW_TRACKING_URI``; the embedded default
is a SQLite store ``$HPO_HOME/mlflow.db`` with artifacts in ``$HPO_HOME/mlartifacts`` (no server).
The parent run is created once per sweep (by ``hpo sweep``, ``hpo track`` or the DAG), under the
study lock, and its id is stored in the study; workers find it there and log a child run per
finished trial. Logging never fails a trial: a tracking error is logged once as a warning, the
worker stops trying for a minute, and ``hpo track STUDY`` back-fills the missing child runs from
the study later (it is idempotent: a trial that has a finished child run is skipped).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError
from hpo_core.storage import ENV_HOME, file_lock, mask_url

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from optuna.trial import FrozenTrial

    from hpo_core.study import SweepStudy

__all__ = [
    "ATTR_EXPERIMENT",
    "ATTR_PARENT_RUN",
    "ATTR_TRACKING_URI",
    "ENV_TRACKING",
    "Tracker",
    "default_artifact_root",
    "fluent_tracking",
    "init_tracking",
    "resolve_tracking_uri",
]

_log = logging.getLogger(__name__)

ENV_TRACKING = "MLFLOW_TRACKING_URI"
ATTR_PARENT_RUN = "sweepflow.mlflow_parent_run"
ATTR_EXPERIMENT = "sweepflow.mlflow_experiment"
ATTR_TRACKING_URI = "sweepflow.mlflow_uri"  # masked: where the parent run lives, for humans
TAG_SWEEP = "sweepflow.sweep"
TAG_ROLE = "sweepflow.role"
TAG_TRIAL = "sweepflow.trial_number"
TAG_STATE = "sweepflow.trial_state"
TAG_METRIC = "sweepflow.metric"
TAG_DIRECTION = "sweepflow.direction"
TAG_PRUNED_AT = "sweepflow.pruned_at_step"
TAG_LOG_SCALED = "sweepflow.log_scaled"  # the trial's parameters sampled on a log scale: lr,wd
# A pruned trial stopped early by design: FINISHED (tagged PRUNED), not KILLED, which the UI
# draws as a crash.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
# Numeric trial attributes that are facts of the sweep's data, the same for every trial: params,
# so that the chart view is not filled with flat lines. An objective marks its own with
# ctx.set_constant (ATTR_CONSTANTS); these names are also taken as constants in trials that an
# older version recorded with set_attr.
SWEEP_CONSTANTS = frozenset(
    {
        "n_classes",
        "n_train",
        "n_val",
        "chance_level",
        "n_features",
        "window",
        "positive_rate_train",
        "positive_rate_val",
        "positive_rate_test",
    }
)
# Another name for the score (arc_classifier's best epoch): as a metric it would be a second
# column to sort by, and on a pruned trial a score the sweep never ranked by (the curve
# `<metric>_epoch` holds it).
_SCORE_COPIES = frozenset({"best_val_acc"})
# Which trial a noise probe repeats, and its seed: identifiers, not measures (tags).
_TRIAL_IDS = frozenset({"noise_probe_of", "noise_probe_seed"})
# After a failed child run, a worker skips tracking for this long and then tries the next trial's
# run. Not a retry loop (tenacity's job): nothing is retried in place, since waiting on MLflow
# would hold up the sweep, and `hpo track` back-fills what was skipped.
_RETRY_AFTER_S = 60.0
# The background logger: trial runs it holds at most (a full queue drops, `hpo track`
# back-fills), and how long a worker waits for it at exit (a preempted node has seconds).
QUEUE_SIZE = 1000
DRAIN_S = 5.0
ENV_DRAIN = "HPO_TRACKING_DRAIN_S"


def hpo_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or ".hpo").expanduser().resolve()


def resolve_tracking_uri(uri: str | None = None) -> str:
    return uri or os.environ.get(ENV_TRACKING) or f"sqlite:///{hpo_home() / 'mlflow.db'}"


def default_artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store; a server decides its own (None)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


@contextlib.contextmanager
def fluent_tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.pytorch.log_model``, ``load_model``) at ``uri`` for a
    block, then put back what was there: ``mlflow.set_tracking_uri`` also sets the environment
    variable, which would otherwise leak into every later call and child process."""
    import mlflow

    before = os.environ.get(ENV_TRACKING)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None unsets the variable


def init_tracking(uri: str) -> None:
    """Create a SQLite tracking store once, under a file lock: several processes creating a fresh
    MLflow SQLite database at once race in its migrations and can leave it broken."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        with file_lock(db.with_suffix(db.suffix + ".lock")):
            MlflowClient(uri).search_experiments(max_results=1)


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _first_line(exc: BaseException) -> str:
    """A short reason: the cause users act on, not a client library's retry report."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("timed out", "timed out"),
        ("Max retries exceeded", "no answer"),
    ):
        if needle in text:
            return reason
    # masked before it is cut: a driver's message may quote the store's URL with its password
    lines = mask_url(text).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class Tracker:
    """Talks to one tracking store on behalf of one process (a worker, a CLI command, a task).

    ``uri`` wins, then ``$MLFLOW_TRACKING_URI``, then ``stored`` (the URI a sweep's parent run was
    created in, when it carries no password), then the embedded SQLite default.
    """

    def __init__(self, uri: str | None = None, *, stored: str | None = None) -> None:
        # a worker must not hang on a dead server: MLflow retries with backoff for minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # no usage reports from sweep workers on cluster nodes unless the user opts in
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # ending a run against a server would otherwise fetch it to print its URL: a round trip
        # and two stdout lines per trial in a worker's log
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if uri is None and not os.environ.get(ENV_TRACKING) and stored and "***" not in stored:
            uri = stored
        self.uri = resolve_tracking_uri(uri)
        self.masked_uri = mask_url(self.uri)
        self._client: MlflowClient | None = None
        self._down_until = 0.0
        self._warned = False
        self._warned_full = False
        self._run_ids: dict[str, tuple[str, str]] = {}
        self._queue: _TrialQueue | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            init_tracking(self.uri)
            self._client = MlflowClient(self.uri)
        return self._client

    @classmethod
    def for_study(cls, sweep: SweepStudy, uri: str | None = None) -> Tracker | None:
        """The tracker of a tracked sweep (one with a parent run), else None."""
        if not sweep.study.user_attrs.get(ATTR_PARENT_RUN):
            return None
        return cls(uri, stored=sweep.study.user_attrs.get(ATTR_TRACKING_URI))

    def unreachable(self, exc: BaseException, fix: str) -> HpoError:
        return HpoError(f"tracking: cannot reach {self.masked_uri} ({_first_line(exc)}); {fix}")

    # -- the sweep's parent run --------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        try:
            return str(
                self.client.create_experiment(
                    name, artifact_location=default_artifact_root(self.uri)
                )
            )
        except Exception:  # created by another process in between
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return str(existing.experiment_id)

    def ensure_parent_run(self, sweep: SweepStudy) -> str:
        """The sweep's parent run, created once (its id is stored in the study). Idempotent:
        under the study lock, so two launchers (a DAG retry, a second ``hpo sweep``) share one."""
        from mlflow.entities import Param

        try:
            with sweep.handle.study_lock(sweep.name):
                attrs = sweep.study.user_attrs
                if attrs.get(ATTR_PARENT_RUN):
                    return str(attrs[ATTR_PARENT_RUN])
                experiment = self.experiment_id(sweep.name)
                spec = sweep.spec
                run = self.client.create_run(
                    experiment,
                    run_name=sweep.name,
                    tags={
                        TAG_SWEEP: sweep.name,
                        TAG_ROLE: "parent",
                        TAG_METRIC: spec.metric,
                        TAG_DIRECTION: spec.direction,
                        "sweepflow.spec_hash": str(attrs.get("sweepflow.spec_hash", "")),
                        "sweepflow.storage": sweep.handle.masked_url,
                        "mlflow.note.content": spec.description or "",
                    },
                )
                settings = {
                    "objective": spec.objective,
                    "metric": spec.metric,
                    "direction": spec.direction,
                    "n_trials": spec.n_trials,
                    "sampler": spec.sampler.type,
                    "pruner": spec.pruner.type,
                    **{f"fixed.{k}": v for k, v in spec.fixed.items()},
                }
                self.client.log_batch(
                    run.info.run_id,
                    params=[Param(k, str(v)[:500]) for k, v in settings.items()],
                )
                self.client.log_text(run.info.run_id, sweep.loaded.text, "spec.yaml")
                sweep.study.set_user_attr(ATTR_PARENT_RUN, run.info.run_id)
                sweep.study.set_user_attr(ATTR_EXPERIMENT, experiment)
                sweep.study.set_user_attr(ATTR_TRACKING_URI, self.masked_uri)
                _log.info(
                    "MLflow parent run %s for %s in %s",
                    run.info.run_id,
                    sweep.name,
                    self.masked_uri,
                )
                return str(run.info.run_id)
        except HpoError:
            raise
        except Exception as exc:
            raise self.unreachable(
                exc, f"start the tracking server, or set {ENV_TRACKING} to one that runs"
            ) from None

    def attach(self, sweep: SweepStudy, local: Path, artifact_path: str | None = None) -> bool:
        """Attach a file or a folder (the analysis report, a refined spec) to the sweep's parent
        run. Never raises: a report must not be lost because the tracking server is away."""
        parent = sweep.study.user_attrs.get(ATTR_PARENT_RUN)
        if not parent:
            return False
        try:
            if local.is_dir():
                self.client.log_artifacts(str(parent), str(local), artifact_path)
            else:
                self.client.log_artifact(str(parent), str(local), artifact_path)
            return True
        except Exception as exc:
            _log.warning(
                "tracking: could not attach %s to run %s in %s (%s); the files are on disk",
                local,
                parent,
                self.masked_uri,
                _first_line(exc),
            )
            return False

    def close_parent_run(self, sweep: SweepStudy, status: str = "FINISHED") -> None:
        """Mark the parent run ended (the sweep's budget is used, or it was stopped). Runs stay
        writable in MLflow, so later steps (analysis, champions) still attach to it."""
        parent = sweep.study.user_attrs.get(ATTR_PARENT_RUN)
        if parent:
            with contextlib.suppress(Exception):
                self.client.set_terminated(str(parent), status=status)

    def log_sweep_figures(
        self, sweep: SweepStudy, metrics: dict[str, float], tags: dict[str, str]
    ) -> bool:
        """The sweep's figures on its parent run in one ``log_batch`` (best, mean, counts and
        GPU-hours as metrics, the final decision as tags), so sweeps compare in one runs table.
        Logged again by each finish step, `hpo analyze` and `hpo track` (MLflow shows the
        latest). Never raises, like :meth:`attach`: an outage costs the figures until then."""
        from mlflow.entities import Metric, RunTag

        parent = sweep.study.user_attrs.get(ATTR_PARENT_RUN)
        if not parent:
            return False
        stamp = int(time.time() * 1000)
        try:
            self.client.log_batch(
                str(parent),
                metrics=[
                    Metric(k, float(v), stamp, 0) for k, v in metrics.items() if math.isfinite(v)
                ],
                tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()],
            )
            return True
        except Exception as exc:
            _log.warning(
                "tracking: could not log the sweep's figures to run %s in %s (%s)",
                parent,
                self.masked_uri,
                _first_line(exc),
            )
            return False

    # -- child runs ----------------------------------------------------------------------------

    def _child_runs(self, experiment: str, parent: str) -> dict[int, Any]:
        """The trial runs under ``parent`` by trial number; a finished run wins over an
        unfinished one (RUNNING: its worker died or gave up between its calls)."""
        runs = self.client.search_runs(
            [experiment],
            filter_string=f"tags.mlflow.parentRunId = '{parent}' and tags.`{TAG_ROLE}` = 'trial'",
            max_results=50_000,
        )
        out: dict[int, Any] = {}
        for run in runs:
            number = run.data.tags.get(TAG_TRIAL)
            if number is not None and (
                int(number) not in out or out[int(number)].info.status == "RUNNING"
            ):
                out[int(number)] = run
        return out

    def _log_trial(self, job: _TrialRun) -> None:
        """Three round trips: the run with all its tags, one batch of metrics and params, its
        end. The score (``job.metric``) only on COMPLETE trials: Optuna gives a pruned trial its
        last intermediate value, which the sweep never ranked by."""
        from mlflow.entities import Metric, Param

        trial, state = job.trial, job.trial.state.name
        end = _ms(trial.datetime_complete)
        stamp = end or int(time.time() * 1000)
        steps = sorted(trial.intermediate_values.items())
        tags = {
            "mlflow.parentRunId": job.parent,
            TAG_SWEEP: job.sweep,
            TAG_ROLE: "trial",
            TAG_TRIAL: str(trial.number),
            TAG_STATE: state,
            TAG_METRIC: job.metric,
            TAG_DIRECTION: job.direction,
        }
        log_scaled = [k for k, d in trial.distributions.items() if getattr(d, "log", False)]
        if log_scaled:
            tags[TAG_LOG_SCALED] = ",".join(log_scaled)
        if state == "PRUNED" and steps:
            tags[TAG_PRUNED_AT] = str(steps[-1][0])
        for attr in ("fail_reason", "prune_reason"):
            if trial.user_attrs.get(attr):
                tags[f"sweepflow.{attr}"] = str(trial.user_attrs[attr])[:500]
        metrics = [
            Metric(f"{job.metric}_epoch", float(v), stamp, int(step))
            for step, v in steps
            if math.isfinite(v)
        ]
        if state == "COMPLETE" and trial.value is not None and math.isfinite(trial.value):
            # first in the batch: the store keeps the order, and MLflow's compare view plots
            # a run's first metric on its parallel-coordinates plot by default
            metrics.insert(0, Metric(job.metric, float(trial.value), stamp, 0))
        params: dict[str, Any] = dict(trial.params)  # the active ones: conditionals only if used
        from hpo_core.objectives.context import ATTR_CONSTANTS  # the spec's models: not at import

        marked = trial.user_attrs.get(ATTR_CONSTANTS)  # ctx.set_constant's keys
        constants = SWEEP_CONSTANTS.union(marked if isinstance(marked, list) else ())
        for key, value in trial.user_attrs.items():
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or key in params
                or key == job.metric
                or key in _SCORE_COPIES
            ):
                continue
            if key in constants:
                params[key] = value
            elif key in _TRIAL_IDS:
                tags[f"sweepflow.{key}"] = str(value)
            else:
                metrics.append(Metric(key, float(value), stamp, 0))
        run = self.client.create_run(
            job.experiment,
            start_time=_ms(trial.datetime_start),
            run_name=f"trial-{trial.number}",
            tags=tags,
        )
        if metrics or params:
            self.client.log_batch(
                run.info.run_id,
                metrics=metrics,
                params=[Param(k, str(v)[:500]) for k, v in params.items()],
            )
        self.client.set_terminated(
            run.info.run_id, status=_STATUS.get(state, "FAILED"), end_time=end
        )

    def _trial_run(self, sweep: SweepStudy, trial: FrozenTrial) -> _TrialRun | None:
        """The queue's item; the parent run's ids are read from the study once per sweep (each
        read is a storage query, and they never change once set)."""
        ids = self._run_ids.get(sweep.name)
        if ids is None:
            attrs = sweep.study.user_attrs
            parent, experiment = attrs.get(ATTR_PARENT_RUN), attrs.get(ATTR_EXPERIMENT)
            if not parent or not experiment:
                return None
            ids = self._run_ids[sweep.name] = (str(parent), str(experiment))
        spec = sweep.spec
        return _TrialRun(sweep.name, spec.metric, spec.direction, ids[0], ids[1], trial)

    def _log_or_skip(self, job: _TrialRun) -> bool:
        """Log one trial run; never raises. After a failure, skips for a minute."""
        if time.monotonic() < self._down_until:
            return False
        try:
            self._log_trial(job)
            return True
        except Exception as exc:  # tracking must never fail a trial
            self._down_until = time.monotonic() + _RETRY_AFTER_S
            if not self._warned:
                self._warned = True
                _log.warning(
                    "tracking: could not log trial %d to %s (%s); trials go on, and "
                    "`hpo track %s` back-fills the missing runs later",
                    job.trial.number,
                    self.masked_uri,
                    _first_line(exc),
                    job.sweep,
                )
            return False

    def start_background(self) -> None:
        """Import MLflow and open the store now, then start the background logger: a worker
        pays this once before its first trial (seconds on a busy node), not in its bounded
        wait at exit. Never raises: a store that cannot be opened fails the first run."""
        with contextlib.suppress(Exception):
            self.client  # noqa: B018  # the property imports mlflow and opens the store
        if self._queue is None:
            self._queue = _TrialQueue(self._log_or_skip, QUEUE_SIZE)

    def queue_trial(self, sweep: SweepStudy, trial: FrozenTrial) -> bool:
        """Hand a finished trial to this tracker's background logger and return at once (the
        worker's trial loop never waits on MLflow). False when it was dropped: not tracked,
        or the queue is full (a slow or hung server); `hpo track` back-fills those."""
        job = self._trial_run(sweep, trial)
        if job is None:
            return False
        if self._queue is None:
            self._queue = _TrialQueue(self._log_or_skip, QUEUE_SIZE)
        if self._queue.put(job):
            return True
        if not self._warned_full:
            self._warned_full = True
            _log.warning(
                "tracking: %d trial run(s) wait to be logged to %s; trial %d is not logged "
                "now, and `hpo track %s` back-fills it later",
                self._queue.pending,
                self.masked_uri,
                trial.number,
                sweep.name,
            )
        return False

    def drain(self, *, preempted: bool = False) -> int:
        """Wait for the queued trial runs at exit; the number given up on. Bounded: a logger
        that logs no run for ``$HPO_TRACKING_DRAIN_S`` seconds (default 5: a hung server) is
        given up on, and a ``preempted`` worker (its node is going away) waits that long in
        all. `hpo track` and the sweep's finish back-fill what is left."""
        if self._queue is None:
            return 0
        stall = float(os.environ.get(ENV_DRAIN, "") or DRAIN_S)
        left = self._queue.close(stall, cap=stall if preempted else None)
        self._queue = None
        if left:
            _log.warning(
                "tracking: gave up on %d trial run(s) for %s at exit (none logged in %gs); "
                "`hpo track` back-fills them",
                left,
                self.masked_uri,
                stall,
            )
        return left

    def sync_trials(self, sweep: SweepStudy) -> tuple[int, int]:
        """Back-fill a child run for every finished trial that has none, or an unfinished one
        (replaced): (logged, present)."""
        from optuna.trial import TrialState

        from hpo_core.study import is_carried  # imports optuna

        parent = self.ensure_parent_run(sweep)
        experiment = str(sweep.study.user_attrs.get(ATTR_EXPERIMENT))
        try:
            existing = self._child_runs(experiment, parent)
            logged = 0
            for trial in sweep.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            ):
                run = existing.get(trial.number)
                if (run is not None and run.info.status != "RUNNING") or is_carried(trial):
                    continue  # a carried trial has its run under the sweep it came from
                if run is not None:  # half-logged: its worker died or gave up at exit
                    self.client.delete_run(run.info.run_id)
                    del existing[trial.number]
                job = self._trial_run(sweep, trial)
                assert job is not None  # ensure_parent_run stored the ids
                self._log_trial(job)
                logged += 1
        except Exception as exc:
            raise self.unreachable(
                exc, "start the tracking server and run `hpo track` again"
            ) from None
        return logged, len(existing)


@dataclass(frozen=True)
class _TrialRun:
    """What a trial's child run needs, read from the study beforehand: the queue's item."""

    sweep: str
    metric: str
    direction: str
    parent: str
    experiment: str
    trial: FrozenTrial


class _TrialQueue:
    """A bounded queue of trial runs and the one daemon thread that logs them in order.

    Not MLflow's own asynchronous logging (``synchronous=False``): that covers ``log_batch``
    and ``set_tag`` but not ``create_run`` or ``set_terminated`` (two round trips left in the
    loop), its queue is unbounded, and its exit hook waits on a dead server without a bound.
    """

    def __init__(self, log: Callable[[_TrialRun], bool], maxsize: int) -> None:
        self._log = log
        self._queue: queue.Queue[_TrialRun | None] = queue.Queue(maxsize)
        self._done = threading.Condition()
        self.pending = 0  # queued or being logged
        self._progress = time.monotonic()  # when the last run was done with
        self._closed = False
        threading.Thread(target=self._run, name="sweepflow-tracking", daemon=True).start()

    def put(self, job: _TrialRun) -> bool:
        if self._closed:
            return False
        with self._done:
            self.pending += 1
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            with self._done:
                self.pending -= 1
            return False

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if not self._closed:  # given up on at exit: `hpo track` back-fills
                self._log(job)
            with self._done:
                self.pending -= 1
                self._progress = time.monotonic()
                self._done.notify_all()

    def close(self, stall: float, *, cap: float | None) -> int:
        """Stop taking runs and wait while the thread logs them, until it stalls for ``stall``
        seconds or ``cap`` seconds pass: the number left, dropped."""
        start = time.monotonic()
        with self._done:
            self._progress = max(self._progress, start)
            while self.pending:
                limit = self._progress + stall
                if cap is not None:
                    limit = min(limit, start + cap)
                if time.monotonic() >= limit:
                    break
                self._done.wait(limit - time.monotonic())
            self._closed = True
            left = self.pending
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # the thread ends once it reaches it
        return left

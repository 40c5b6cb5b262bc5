"""The steps of an orchestrated sweep, one function per Airflow task (the DAGs only call these).

Every step is a transaction: safe to retry, never duplicating a study, a trial or an MLflow run
(the study and the parent run are created idempotently, workers share one budget, champions reuse
finished runs). Steps exchange a small :class:`RunPlan` (names and paths, no data, no credential);
the storage URL and the tracking URI are passed in by the caller, which reads them from an Airflow
connection or the environment at run time.

The sweep runs in segments: workers stop at each checkpoint of ``decision.checkpoints`` (``hpo
worker --until N``), the gate decides continue or stop on the study as it stands, and the next
segment's workers start only on continue. That works the same on one machine, in ``dag.test()``
(which runs tasks one by one) and with pods on a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hpo_core.errors import HpoError
from hpo_core.pipeline.configs import objective_needs_gpu, resolve_config
from hpo_core.pipeline.pods import pod_request, pod_settings

if TYPE_CHECKING:
    from hpo_core.checks import CheckResult

__all__ = [
    "MAX_GATES",
    "RunPlan",
    "check_run_gpu",
    "finish_sweep",
    "gate",
    "gate_skip_reason",
    "plan_run",
    "prepare_sweep",
    "run_local_worker",
    "stop_sweep",
    "worker_slots",
]

_log = logging.getLogger(__name__)

MAX_GATES = 3  # checkpoints a DAG gates on; later ones are judged by the final analysis
MAX_WORKERS = 64
EXIT_STOPPED = 3  # `hpo worker`'s exit code for a study whose stop flag is set (hpo_core.cli)


@dataclass(frozen=True)
class RunPlan:
    """What one DAG run does; small and JSON-safe, so it travels as an XCom."""

    config: str  # absolute path of the spec on the Airflow side
    config_name: str  # its file name (pods read it from the worker image)
    study_name: str
    workers: int
    mode: Literal["local", "kubernetes"]
    n_trials: int  # the budget this run works to (the spec's, or the run's override)
    allow_cpu: bool
    dry_run: bool  # checks only: no worker, no champion
    tracking: bool
    segments: list[int]  # finished-trial targets: the gated checkpoints, then n_trials
    run_dir: str  # where this run's checklist, report and summary go
    champions: bool = True
    pod: dict[str, Any] = field(default_factory=dict)  # worker pod settings (kubernetes mode)
    spec_error: str | None = None  # the spec does not validate: the `spec` check fails on it
    budget_override: bool = False  # n_trials is the run's override: prepare sets the budget
    gpus: list[str] | None = None  # local mode: the GPUs to place workers on (None: visible ones)
    workers_per_gpu: int | None = None  # local mode: workers per GPU, packed (None: round robin)
    needs_gpu: bool = True  # the objective trains torch models (False: the synthetic ones)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunPlan:
        return cls(**raw)


def plan_run(
    params: dict[str, Any],
    *,
    run_id: str,
    home: str | Path | None = None,
    pod_connection: str | dict[str, Any] | None = None,
    storage_url: str | None = None,
    max_gates: int = MAX_GATES,
    next_spec: str | None = None,
) -> RunPlan:
    """Check a run's parameters (raise :class:`HpoError` naming the field) and plan it. A spec
    that does not validate still gets a plan, marked ``spec_error``: the pre-launch check `spec`
    reports it, so the checklist says why the run stopped. ``pod_connection`` is the deployment's
    pod settings (the ``hpo_kubernetes`` connection's extra), read in kubernetes mode only.

    With ``storage_url``, an existing study is looked at: a stopped one fails the plan
    (:class:`StudyStopped`, saying who stopped it), and without an override the run works to
    the study's live budget. An unreachable storage is left to the `storage` check.

    ``next_spec``: a generation's run, of the refined spec
    :func:`hpo_core.pipeline.resolve_next_generation` resolved (never a path from a user), with
    the budget refine gave it."""
    from hpo_core.errors import SpecError
    from hpo_core.objectives import load_spec, require_objective_spec

    if next_spec is not None and params.get("n_trials") is not None:
        raise HpoError(
            "params.n_trials: a generation runs the budget refine gave its spec; leave it empty"
        )
    config = Path(next_spec) if next_spec else resolve_config(str(params.get("config") or ""))
    workers = params.get("workers", 1)
    # bool is an int to Python (True == 1), not to the form's JSON schema: refuse it here too
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise HpoError(
            f"params.workers: must be an integer from 1 to {MAX_WORKERS}, got {workers!r}"
        )
    mode = params.get("mode", "local")
    if mode not in ("local", "kubernetes"):
        raise HpoError(f"params.mode: must be 'local' or 'kubernetes', got {mode!r}")
    override = params.get("n_trials")
    if override is not None and (
        isinstance(override, bool) or not isinstance(override, int) or override < 1
    ):
        raise HpoError(f"params.n_trials: must be a positive integer or empty, got {override!r}")
    asked = pod_request(params.get("pod"))  # refused in either mode: a run sets no more than this
    gpus, per_gpu = _gpu_params(params, workers=workers, mode=mode)
    spec_error = None
    try:
        loaded = load_spec(config)
        require_objective_spec(loaded.spec, source=loaded.source)
        study_name, n_trials = loaded.spec.study_name, override or loaded.spec.n_trials
        checkpoints = loaded.spec.decision.checkpoints
        worker_timeout = loaded.spec.worker.timeout
        worker_grace = loaded.spec.worker.termination_grace_seconds
        needs_gpu = objective_needs_gpu(loaded.spec.objective)
    except SpecError as exc:
        spec_error = str(exc).splitlines()[0]
        study_name, n_trials, checkpoints = config.stem, override or 1, []
        worker_timeout = worker_grace = None
        needs_gpu = True
    dry_run = bool(params.get("dry_run", False))
    if storage_url is not None and spec_error is None and not dry_run:
        budget = _live_budget(study_name, storage_url)
        if override is None and budget is not None:
            n_trials = budget
    # the gates the DAG has (a scheduled DAG builds those of its spec's checkpoints); one the
    # study's budget has since brought in is judged by the final analysis
    gated = [c for c in checkpoints if c < n_trials][: min(max_gates, MAX_GATES)]
    safe_run = path_part(run_id, "run_id")
    root = Path(home or os.environ.get("HPO_HOME") or ".hpo").resolve()
    return RunPlan(
        config=str(config),
        config_name=config.name,
        study_name=study_name,
        workers=workers,
        mode=mode,
        n_trials=n_trials,
        allow_cpu=bool(params.get("allow_cpu", False)),
        dry_run=dry_run,
        tracking=bool(params.get("tracking", True)),
        segments=[*gated, n_trials],
        run_dir=str(root / "runs" / study_name / safe_run),
        champions=bool(params.get("champions", True)),
        pod=(
            pod_settings(
                asked, connection=pod_connection, timeout=worker_timeout, grace=worker_grace
            )
            if mode == "kubernetes"
            else {}
        ),
        spec_error=spec_error,
        budget_override=override is not None,
        gpus=gpus,
        workers_per_gpu=per_gpu,
        needs_gpu=needs_gpu,
    )


def _gpu_params(
    params: dict[str, Any], *, workers: int, mode: str
) -> tuple[list[str] | None, int | None]:
    """The run's ``gpus`` ("0,1") and ``workers_per_gpu``, checked: well formed, only in local
    mode (pods get GPUs from ``pod.gpus``), and the workers fitting on this machine's GPUs."""
    from hpo_core.worker import DAG_NAMES, assign_gpus, parse_gpus

    text, per_gpu = params.get("gpus"), params.get("workers_per_gpu")
    if text is not None and (not isinstance(text, str) or len(text) > 4096):
        raise HpoError(f'params.gpus: must be text such as "0,1" or empty, got {text!r:.60}')
    # bool is an int to Python, not to the form's schema
    if per_gpu is not None and (
        isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1
    ):
        raise HpoError(
            f"params.workers_per_gpu: must be a positive integer or empty, got {per_gpu!r:.60}"
        )
    gpus = parse_gpus(text, name=DAG_NAMES.gpus) if text is not None and text.strip() else None
    if mode != "local":
        if gpus is not None or per_gpu is not None:
            name = DAG_NAMES.gpus if gpus is not None else DAG_NAMES.per_gpu
            raise HpoError(
                f"{name}: places local workers only; in kubernetes mode each pod gets the GPUs "
                "of pod.gpus, so leave it empty"
            )
        return None, None
    if gpus is not None or per_gpu is not None:  # round robin over what is found cannot fail
        assign_gpus(workers, gpus=gpus, per_gpu=per_gpu, names=DAG_NAMES)
    return gpus, per_gpu


def check_run_gpu(plan: RunPlan) -> CheckResult:
    """The pre-launch GPU check of a run: for an objective that trains no torch model a pass
    (allow_cpu or not), else :func:`hpo_core.checks.check_gpu` on the run's local workers."""
    from hpo_core.checks import check_gpu, no_gpu_needed

    if not plan.needs_gpu:
        return no_gpu_needed()
    return check_gpu(
        allow_cpu=plan.allow_cpu,
        workers=plan.workers if plan.mode == "local" else None,
        gpus=plan.gpus,
        per_gpu=plan.workers_per_gpu,
    )


def path_part(value: str, name: str) -> str:
    """``value`` as one path component (a run id, a worker id): characters other than letters,
    digits, ``-``, ``_`` and ``.`` become ``_``; ``.``, ``..`` and separators are refused, so a
    value chosen by a user never reaches outside the folder it names a child of."""
    bad = not isinstance(value, str) or not value or any(c in value for c in "/\\\0")
    safe = "" if bad else "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:200]
    if not safe.strip("."):
        raise HpoError(f"{name}: {value!r} cannot name a folder; use letters, digits, '-', '_'")
    return safe


def _live_budget(study_name: str, storage_url: str) -> int | None:
    """The existing study's budget, or None if there is no such study or no reachable storage;
    raises :class:`StudyStopped` when its stop flag is set."""
    from hpo_core.errors import StorageError, StudyError, StudyStopped
    from hpo_core.storage import open_storage
    from hpo_core.study import ATTR_N_TRIALS, load_study, require_running

    try:
        handle = open_storage(storage_url, create=False)
    except StorageError:
        return None
    try:
        sweep = load_study(study_name, handle)
        require_running(sweep)
        return int(sweep.study.user_attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials))
    except StudyStopped:
        raise
    except StudyError:  # not created yet: the run creates it from the spec
        return None
    finally:
        handle.dispose()


def prepare_sweep(plan: RunPlan, *, storage_url: str, tracking_uri: str | None) -> dict[str, Any]:
    """Create or load the study (idempotent), apply the run's budget, create the parent run."""
    from hpo_core.objectives import load_spec
    from hpo_core.storage import open_storage
    from hpo_core.study import create_study, require_running, set_budget

    handle = open_storage(storage_url)
    try:
        sweep = create_study(load_spec(plan.config), handle)
        require_running(sweep)
        from hpo_core.pipeline.generations import record_generation

        record_generation(sweep)  # the lineage's link: parent, its spec hash, the number
        if plan.budget_override:  # the run's n_trials, as `hpo budget STUDY N` would set it
            old, new = set_budget(sweep, plan.n_trials)
            if old != new:
                _log.info("%s: budget %d -> %d (run override)", plan.study_name, old, new)
        parent = None
        if plan.tracking:
            from hpo_core.tracking import Tracker

            parent = Tracker(tracking_uri).ensure_parent_run(sweep)
        finished = _finished(sweep)
        return {"study": plan.study_name, "parent_run": parent, "finished": finished}
    finally:
        handle.dispose()


def _finished(sweep: Any) -> int:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return len(sweep.study.get_trials(deepcopy=False, states=states))


def worker_slots(plan: RunPlan, segment: int) -> list[dict[str, Any]]:
    """The workers of one segment (none when the segment does not exist or in a dry run): each a
    small dict the local task or the pod turns into `hpo worker` arguments."""
    if plan.dry_run or segment >= len(plan.segments):
        return []
    until = plan.segments[segment]
    final = segment == len(plan.segments) - 1
    slots: list[dict[str, Any]] = [
        {"worker_id": f"{plan.study_name}-s{segment}-w{i}", "until": None if final else until}
        for i in range(plan.workers)
    ]
    if plan.mode == "local":  # each local worker its own GPU(s); a pod gets its from Kubernetes
        from hpo_core.worker import DAG_NAMES, assign_gpus

        placed = assign_gpus(
            plan.workers, gpus=plan.gpus, per_gpu=plan.workers_per_gpu, names=DAG_NAMES
        )
        for slot, device in zip(slots, placed.devices, strict=True):
            slot["gpus"] = None if device is None else [device]
    return slots


def run_local_worker(
    plan: RunPlan,
    slot: dict[str, Any],
    *,
    storage_url: str,
    tracking_uri: str | None,
    timeout: float | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One worker as a local process: the command a pod runs, joining the study by name (it
    runs the stored spec), in a clean environment: what `hpo worker` needs, not the
    orchestrator's secrets (:func:`hpo_core.worker.worker_environment`). ``on_progress`` gets
    the worker's lines as they come (trial finished, its value and the best so far; pruned and
    failed trials), and last the path of the worker's log file."""
    from hpo_core.errors import StudyStopped
    from hpo_core.pipeline.progress import run_streaming
    from hpo_core.worker import worker_command, worker_environment

    command = worker_command(
        study=plan.study_name,
        worker_id=slot["worker_id"],
        until=slot["until"],
        executable=str(Path(sys.executable).with_name("hpo")),
    )
    env = worker_environment(
        HPO_STORAGE_URL=storage_url,
        MLFLOW_TRACKING_URI=tracking_uri if tracking_uri and plan.tracking else None,
    )
    if slot.get("gpus"):  # None (no GPU found, or a slot from before placement): inherited
        env["CUDA_VISIBLE_DEVICES"] = ",".join(slot["gpus"])
    env.setdefault("HPO_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // plan.workers)))
    log_dir = Path(plan.run_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{path_part(slot['worker_id'], 'worker_id')}.log"
    try:
        code, stdout = run_streaming(
            command,
            env=env,
            log_path=log_path,
            on_line=on_progress,
            maximize=_maximizes(plan),
            timeout=timeout,
        )
    finally:
        if on_progress is not None:
            on_progress(f"worker {slot['worker_id']}: its log is {log_path}")
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        if code == EXIT_STOPPED and tail:
            raise StudyStopped(tail[-1].removeprefix("error: "))
        raise HpoError(
            f"worker {slot['worker_id']} exited with code {code}: "
            f"{' | '.join(tail)[:400]} (log: {log_path})"
        )
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return report


def _maximizes(plan: RunPlan) -> bool:
    """The spec's direction, for the progress lines' best so far (maximize if unreadable: the
    worker runs the stored spec and reports the trouble itself)."""
    from hpo_core.errors import SpecError
    from hpo_core.objectives import load_spec

    try:
        return load_spec(plan.config).spec.direction == "maximize"
    except SpecError:
        return True


def gate(
    plan: RunPlan,
    segment: int,
    *,
    storage_url: str,
    override: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The mid-sweep decision after segment ``segment`` (``hpo decide``), stored in the study;
    on continue, the noise probe's trials queued first (``decision.noise_probe``). With a
    person's ``override`` (an :class:`~hpo_core.pipeline.review.Answer` as a dict, spec
    ``decision.override``), their choice replaces the rules' action and is recorded."""
    from hpo_core.pipeline.sweeps import judge, record_decision
    from hpo_core.storage import open_storage
    from hpo_core.study import enqueue_noise_probe, load_study

    handle = open_storage(storage_url, create=False)
    try:
        sweep = load_study(plan.study_name, handle)
        decision = judge(sweep)
        record = decision.as_dict()
        record["segment"] = segment
        record["checkpoint_target"] = plan.segments[segment]
        if override is not None:
            from hpo_core.pipeline.review import Answer, apply_override

            record = apply_override(sweep, record, Answer.from_dict(override))
        probe = enqueue_noise_probe(sweep) if record["action"] == "continue" else None
        if probe is not None:
            record["noise_probe"] = probe.as_dict()
        record_decision(sweep, record)
        return record
    finally:
        handle.dispose()


def gate_skip_reason(plan: RunPlan, segment: int) -> str | None:
    """Why the gate after segment ``segment`` has nothing to decide (None: it decides)."""
    if plan.dry_run:
        return "a dry run: checks only, no worker ran; nothing to decide"
    if segment < len(plan.segments) - 1:
        return None
    budget = f"the sweep runs to its budget of {plan.n_trials} trials"
    if len(plan.segments) == 1:
        return f"the spec has no checkpoint below {plan.n_trials} trials: nothing to decide"
    return f"no checkpoint after {plan.segments[-2]} trials: nothing to decide ({budget})"


def stop_sweep(
    plan: RunPlan, decision: dict[str, Any], *, storage_url: str, by: str | None = None
) -> str:
    """Set the study's stop flag (workers anywhere finish their trial and exit)."""
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study, stop_study

    handle = open_storage(storage_url, create=False)
    try:
        sweep = load_study(plan.study_name, handle)
        reason = f"{decision.get('rule')}: {decision.get('message')}"
        stop_study(sweep, reason, by=by)
        return reason
    finally:
        handle.dispose()


def finish_sweep(
    plan: RunPlan,
    *,
    storage_url: str,
    tracking_uri: str | None,
    decision: dict[str, Any] | None,
) -> dict[str, Any]:
    """After the workers: the analysis report and the refined spec (attached to the parent run),
    champions unless the sweep failed or this is a dry run, and a summary (markdown + JSON)."""
    from hpo_core.analysis import ATTR_DECISIONS
    from hpo_core.files import write_atomic
    from hpo_core.pipeline.finish import publish, report_study
    from hpo_core.pipeline.review import ATTR_OVERRIDES
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study, study_progress

    run_dir = Path(plan.run_dir)
    handle = open_storage(storage_url, create=False)
    try:
        sweep = load_study(plan.study_name, handle)
        progress = study_progress(sweep)
        done = report_study(
            sweep,
            run_dir / "report",
            on_step=lambda step: _log.info("analysis of %s: %s", plan.study_name, step),
            on_warning=_log.warning,
        )
        analysis, refinement, files = done.analysis, done.refinement, done.files
        generation = _generation_facts(sweep, run_dir / "report" / "next_spec.yaml", refinement)
        published = None
        if plan.tracking:  # a tracking outage fails the step: Airflow retries it
            published = publish(
                sweep,
                run_dir / "report",
                "report",
                tracking_uri=tracking_uri,
                backfill=True,
                best_effort=False,
                analysis=analysis,
            )
        tracker = published.tracker if published is not None else None
        stopped = (decision or {}).get("action") == "stop"
        champion: dict[str, Any] | None = None
        skipped = None
        if plan.dry_run:
            skipped = "dry run"
        elif not plan.champions:
            skipped = "champions off for this run"
        elif stopped:
            skipped = f"the sweep was stopped ({(decision or {}).get('rule')})"
        elif not analysis.summary.complete:
            skipped = "no completed trial"
        elif not plan.tracking:
            skipped = "tracking is off (champions are recorded in MLflow)"
        elif not _has_trainer(sweep.spec):
            skipped = f"objective {sweep.spec.objective!r} has no champion training"
        else:
            from hpo_core.champions import train_champions

            # with champions.approval, the alias waits for a person (pipeline.review)
            hold = sweep.spec.champions.approval.required
            result = train_champions(sweep, tracking_uri=tracking_uri, hold=hold)
            champion = {
                "model": result.model_name,
                "version": result.version,
                "best_trial": result.best_trial,
                "mean": result.means[result.best_trial][0],
                "promoted": result.promoted,
                "message": result.message,
                "promotion": result.promotion.as_dict() if result.promotion else None,
            }
            if result.pending:
                champion |= _approval_evidence(sweep, result, tracking_uri)
        thresholds = _threshold_step(sweep, run_dir / "report" / "thresholds")
        if thresholds is not None and tracker is not None:
            tracker.attach(sweep, run_dir / "report" / "thresholds", "thresholds")
        summary = {
            "study": plan.study_name,
            "config": plan.config_name,
            "mode": plan.mode,
            "workers": plan.workers,
            "n_trials": progress.n_trials,
            "complete": progress.complete,
            "pruned": progress.pruned,
            "failed": progress.failed,
            "carried": progress.carried,  # of complete and pruned: a warm start's, not this run's
            "best_value": progress.best_value,
            "best_trial": progress.best_trial,
            "failure_rate": round(analysis.summary.failure_rate, 4),
            "max_failure_rate": sweep.spec.decision.max_failure_rate,
            "lost": analysis.summary.lost,
            "lost_rate": round(analysis.summary.lost_rate, 4),
            "max_lost_rate": sweep.spec.decision.max_lost_rate,
            "gpu_hours_lost": round(analysis.summary.gpu_hours_lost, 3),
            "lost_causes": analysis.summary.lost_causes,
            "noise": dataclasses.asdict(analysis.noise) if analysis.noise else None,
            "decision": decision,  # the last gate's (this run's), as the DAG passed it
            # THE decision: the rules over every trial at the end, as in the report (e.g. "done
            # (budget) ... target not reached"); the checkpoints' decisions are its history
            "final_decision": analysis.decision.as_dict(),
            "decisions": sweep.study.user_attrs.get(ATTR_DECISIONS, []),
            "report": str(run_dir / "report" / "report.md"),
            "next_spec": str(run_dir / "report" / "next_spec.yaml") if refinement else None,
            "champion": champion,
            "champions_skipped": skipped,
            "overrides": sweep.study.user_attrs.get(ATTR_OVERRIDES, []),
            "generation": generation,  # the chain: number, family, spec hash, the next spec
            "thresholds": thresholds,
            "report_files": len(files),
        }
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        write_atomic(run_dir / "summary.md", _summary_markdown(summary))
        if tracker is not None:
            tracker.attach(sweep, run_dir / "summary.md", None)
            if progress.finished >= progress.n_trials or stopped:
                tracker.close_parent_run(sweep, "KILLED" if stopped else "FINISHED")
        return summary
    finally:
        handle.dispose()


def _generation_facts(sweep: Any, next_file: Path, refinement: Any) -> dict[str, Any]:
    """The sweep's place in its chain, recorded in the study: its generation link, and the
    refined spec the report wrote (the next generation starts from that record only)."""
    from hpo_core.champions import family_name
    from hpo_core.pipeline.generations import record_generation, record_next_spec
    from hpo_core.study import ATTR_SPEC_HASH

    link = record_generation(sweep)
    nxt = record_next_spec(sweep, next_file) if refinement is not None else None
    return {
        "number": link["number"],
        "family": family_name(sweep.name),
        "parent": link["parent"],
        "root": link["root"],
        "spec_hash": sweep.study.user_attrs.get(ATTR_SPEC_HASH),
        "next": nxt,
    }


def finish_alerts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The alerts a finished sweep's summary calls for (subject, text): a failed-trial rate
    above ``decision.max_failure_rate``, a lost-trial rate above ``decision.max_lost_rate``."""
    study, report = summary["study"], summary["report"]
    alerts = []
    limit = summary.get("max_failure_rate")
    if limit is not None and summary["failure_rate"] > limit:
        alerts.append(
            (
                f"sweep {study}: failed-trial rate {summary['failure_rate']:.1%}",
                f"above the spec's limit of {limit:.1%}: {summary['failed']} failed, "
                f"{summary['complete']} completed. Report: {report}",
            )
        )
    limit = summary.get("max_lost_rate")
    if limit is not None and summary.get("lost_rate", 0.0) > limit:
        causes = ", ".join(f"{kind} {n}" for kind, n in summary["lost_causes"].items())
        alerts.append(
            (
                f"sweep {study}: lost-trial rate {summary['lost_rate']:.1%}",
                f"above the spec's limit of {limit:.1%}: the cluster keeps killing workers "
                f"(preemptions, evictions, dead nodes). {summary['lost']} trials lost "
                f"({causes}; re-queued, not counted as failed), "
                f"{summary['gpu_hours_lost']:.3g} GPU-hours lost. Report: {report}",
            )
        )
    return alerts


def _threshold_step(sweep: Any, out: Path) -> dict[str, Any] | None:
    """Precision and recall per threshold for the top models, when the objective records score
    histograms (binary_classifier); None otherwise."""
    from hpo_core.pipeline.reading import sweep_thresholds

    try:
        report = sweep_thresholds(sweep, out).report
    except HpoError:  # no completed trial, or an objective that records no score histograms
        return None
    top = report.models[0]
    return {
        "file": str(out / "thresholds.md"),
        "required_precision": report.required_precision,
        "best_trial": top.trial,
        "threshold": top.chosen.threshold if top.chosen else None,
        "precision": top.chosen.precision if top.chosen else None,
        "recall": top.chosen.recall if top.chosen else None,
    }


def _approval_evidence(sweep: Any, result: Any, tracking_uri: str | None) -> dict[str, Any]:
    """What a person reviewing a champion sees besides the test: the spread over seeds, the
    configuration, the runs with links (no credential), the version the alias would leave."""
    from hpo_core.pipeline.review import run_link
    from hpo_core.study import top_trials
    from hpo_core.tracking import ATTR_PARENT_RUN, Tracker

    tracker = Tracker(tracking_uri)
    runs = [r for r in result.runs if r.trial == result.best_trial]
    experiment = str(tracker.client.get_run(runs[0].run_id).info.experiment_id)
    params = next(
        (t.params for t in top_trials(sweep, len(result.means)) if t.number == result.best_trial),
        {},
    )
    approval = sweep.spec.champions.approval
    return {
        "pending": True,
        # the stored spec's terms of the question (the config file may have changed since)
        "ask": {"timeout": approval.timeout, "default": approval.default},
        "incumbent_version": result.incumbent_version,
        "spread": result.means[result.best_trial][1],
        "seeds": len(runs),
        "params": {**sweep.spec.fixed, **params},
        "parent_run": sweep.study.user_attrs.get(ATTR_PARENT_RUN),
        **(
            {"group_run": {"run_id": group, "link": run_link(tracker.uri, experiment, group)}}
            if (group := result.group_runs.get(result.best_trial))
            else {}
        ),
        "runs": [
            {
                "seed": r.seed,
                "value": r.value,
                "run_id": r.run_id,
                "link": run_link(tracker.uri, experiment, r.run_id),
            }
            for r in runs
        ],
    }


def _overrides_line(overrides: list[dict[str, Any]]) -> str:
    """The gates a person answered, for the summary."""
    return "- overrides: " + "; ".join(
        f"checkpoint {o.get('checkpoint')}: {o['choice']} by {o['by']} (the rules said "
        f"{o['automatic']}"
        + (f"; budget {o['budget'][0]} -> {o['budget'][1]}" if o.get("budget") else "")
        + ")"
        for o in overrides
    )


def _has_trainer(spec: Any) -> bool:
    from hpo_core.objectives import resolve_champion_trainer

    try:
        resolve_champion_trainer(spec.objective, spec.champions.trainer)
    except HpoError:
        return False
    return True


def _promotion_figures(test: dict[str, Any] | None) -> str:
    """The promotion test's figures, for the summary: means and seeds, statistic, p."""
    if not test or test.get("incumbent_mean") is None:
        return ""
    stat, p = test.get("statistic"), test.get("p")
    return (
        f" [{test['test']}: mean {test['new_mean']:.4g} over {test['new_n']} seed(s) vs "
        f"{test['incumbent_mean']:.4g} over {test['incumbent_n']}"
        + (f", statistic {stat:.3g}" if stat is not None else "")
        + (f", p {p:.3g}" if p is not None else "")
        + "]"
    )


def _decision_lines(s: dict[str, Any]) -> list[str]:
    """THE decision (the report's, at the end), then each checkpoint's as history. A summary
    written before the history was kept has only the last gate's record."""
    final = s.get("final_decision")
    lines = [
        "- decision: "
        + (f"{final['action']} ({final['rule']}): {final['message']}" if final else "-")
    ]
    history = s.get("decisions")
    if history is None and s.get("decision"):
        last = s["decision"]
        figures = last.get("figures") or {}
        history = [
            {
                "checkpoint": last.get("checkpoint_target", figures.get("finished")),
                **last,
                "best": figures.get("best"),
                "best_trial": figures.get("best_trial"),
            }
        ]
    if not history:
        return [*lines, "- checkpoints: none decided (no checkpoint before the end of the budget)"]
    lines.append("- checkpoints (history):")
    for e in history:
        best = "-" if e.get("best") is None else f"{e['best']:.4g}"
        trial = "" if e.get("best_trial") is None else f" (trial {e['best_trial']})"
        lines.append(
            f"  - checkpoint {e.get('checkpoint')}: {e.get('action')} ({e.get('rule')}), "
            f"best then {best}{trial}"
        )
    return lines


def _summary_markdown(s: dict[str, Any]) -> str:
    champion = s["champion"]
    lines = [
        f"# Sweep {s['study']}",
        "",
        f"- config `{s['config']}`, {s['workers']} {s['mode']} worker(s)",
        f"- trials: {s['complete']} completed, {s['pruned']} pruned, {s['failed']} failed of a "
        f"budget of {s['n_trials']} (failure rate {s['failure_rate']:.1%})"
        + (
            f"; {s['carried']} completed or pruned were carried in by a warm start (the budget "
            "counts new trials)"
            if s.get("carried")
            else ""
        ),
        f"- lost to the infrastructure: {s['lost']} trial(s), re-queued ({s['lost_rate']:.1%}; "
        f"{s['gpu_hours_lost']:.3g} GPU-hours"
        + "".join(f", {kind} {n}" for kind, n in s["lost_causes"].items())
        + ")",
        "- best: "
        + (
            f"{s['best_value']:.6g} (trial {s['best_trial']})"
            if s["best_value"] is not None
            else "none (no completed trial)"
        ),
        "- seed noise: "
        + (
            f"sd {s['noise']['sd']:.3g} ({s['noise']['source']}: {s['noise']['detail']})"
            if s.get("noise")
            else "not measured (decision.noise_probe, champions.seeds >= 2 or analysis.noise_sd)"
        ),
        *_decision_lines(s),
        f"- report: {s['report']}",
        f"- next spec: {s['next_spec'] or '-'}",
        "- champion: "
        + (
            f"{champion['model']}: {champion['message']}"
            + _promotion_figures(champion.get("promotion"))
            if champion
            else f"skipped ({s['champions_skipped']})"
        ),
    ]
    if s.get("overrides"):
        lines.append(_overrides_line(s["overrides"]))
    t = s.get("thresholds")
    if t:
        lines.append(
            f"- thresholds: {t['file']}; trial {t['best_trial']}: "
            + (
                f"precision {t['precision']:.1%} at recall {t['recall']:.1%} from score "
                f">= {t['threshold']:.2f}"
                if t["threshold"] is not None
                else f"no threshold reaches precision {t['required_precision']:.0%}"
            )
        )
    return "\n".join(lines) + "\n"

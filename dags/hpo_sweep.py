"""
### Hyperparameter sweep (sweepflow)

Runs one hyperparameter sweep from a spec file in the config folder: checks that it can run,
runs the trials on parallel workers, stops early when the spec's rules say the sweep is going
nowhere, then analyses the trials, writes a refined search space for the next sweep and
trains and registers the best configurations in MLflow.

**Trigger it** with the form (Trigger, top right). It opens on a config that runs on any
machine in about a minute (`demo_synthetic.yaml`: no GPU, no data file). Each field:

- **Sweep config**: the spec to run; its description says what each one needs (a GPU, a
  data file). Configs that do not validate are not offered, and are named with their error.
- **Workers**: how many workers share the trial budget, in parallel.
- **Worker mode**: `local` (processes on the Airflow worker) or `kubernetes` (one pod each).
- **Trial budget**: the number of trials, instead of the spec's `n_trials` (empty: the spec's).
- **GPUs**, **Workers per GPU** (local mode): which GPUs the workers get, and how many share one.
- **Allow CPU**: let a config that trains torch models run on the CPU when no GPU is found.
- **Dry run**: the checks and the study's preparation only: no worker runs, nothing is trained.
- **Minimum free disk**, **Run the smoke trial**, **Data manifest** (a sha256sum listing of the
  data files to verify): what the pre-launch checks ask for.
- **Worker pod resources** (kubernetes mode): GPUs, CPU and memory per pod.

**What a run does**, task by task in the Graph view:

1. `plan`: the parameters and the spec, checked; a mistake fails here in one line.
2. `prelaunch.check_*`: spec, storage, data, GPU, disk, dependencies, tracking, one smoke trial.
   A check that fails is a red task whose error is the reason; `prelaunch.checklist` then lists
   every result (first lines of its log, and its Rendered Templates tab) and fails the run
   before anything is created.
3. `prepare`: the Optuna study and the MLflow run of the sweep.
4. `segment_N`: the workers (`local_workers`, or `worker_pods`), each task's log showing its
   trials as they finish (value, best so far) and ending with the path of the worker's own log.
   The spec's `decision.checkpoints` cut the sweep into segments; after each, `gate_N` decides
   to continue or stop (`stop_N` sets the study's stop flag and sends an alert). A gate with
   no checkpoint to decide at is skipped, saying why in its log. With the spec's
   `decision.override`, `review_N` first asks a person (Required Actions) to keep the gate's
   decision, continue, stop or extend the budget; otherwise it is skipped.
5. `finish`: the analysis report, the refined next spec, the champions (not after a stop) and
   a summary, printed in its log. With the spec's `champions.approval`, `approve_champion` asks
   a person before the new champion takes the `@champion` alias and `promote` moves it.

**What it leaves**, in `$HPO_HOME/runs/<study>/<run id>/`: `checklist/` (checklist.md and .json),
`logs/` (one log per worker), `report/` (report.md, plots, `next_spec.yaml`), `summary.md`,
`summary.json` and `alerts.jsonl`; the trials in the study storage (`hpo status <study>`), the
runs and the registered champion in MLflow.

Credentials come from the `hpo_storage`, `hpo_tracking` and `hpo_alerts` connections, never from
the form. `hpo_prelaunch` runs the checks alone; each spec with a `schedule:` key has a DAG of
its own (`hpo_sweep__<file>`), with only the gates its checkpoints need.

**Assets**: `finish` publishes the refined next spec (`sweepflow.next_spec.<first study>`) and a
new champion (`sweepflow.champion.<model>`); a spec with `next: {auto: true}` has a DAG
`hpo_next__<file>` that runs the next generation when its refined spec is published, up to
`next.max_generations` (`hpo lineage <family>` lists the generations).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum

# Airflow 3.3.2's airflow/sdk/__init__.pyi leaves out the deadline names its __init__.py exports
from airflow.sdk import (  # type: ignore[attr-defined]
    Asset,
    AssetAlias,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
    task_group,
)

# Top level: stdlib, pendulum and airflow.sdk only. hpo_core and its Airflow provider
# (hpo_core.airflow) are imported where a DAG is built or a task runs, so the scheduler's parse
# loop imports nothing else at module level.

DEADLINE = timedelta(hours=24)  # a sweep run still going a day after it was queued gets an alert
CHECKS = ("spec", "storage", "data", "gpu", "disk", "dependencies", "tracking", "smoke")
PRELAUNCH_DOC = """
### Pre-launch checklist (sweepflow)

The checks a sweep runs before it starts, alone: nothing is created, no worker runs. Choose the
config and the run's settings in the form as for `hpo_sweep`. Each check (spec, storage, data,
GPU, disk, dependencies, tracking, one smoke trial) is a task: green when it passes or warns, red
with the reason when it fails. `prelaunch.checklist` lists every result in the first lines of its
log and in its Rendered Templates tab, and writes checklist.md and checklist.json to
`$HPO_HOME/runs/<study>/<run id>/checklist/`.
"""


def _catalog() -> list[Any]:
    """The config folder, each spec validated on its own (read once per parse of this file)."""
    from hpo_core.pipeline import config_catalog

    return config_catalog()


def _config_param(default_config: str | None, catalog: list[Any]) -> Param:
    """The form's config choice: the specs that validate, each with what it needs (GPU, data)
    in the description, so the person triggering knows before pressing Trigger; the broken ones
    are named with their error, so one bad file is visible without hiding the others. The first
    choice is one that runs anywhere (:func:`hpo_core.pipeline.default_config`)."""
    from hpo_core.pipeline import default_config as first_choice

    good = [e for e in catalog if e.ok]
    broken = [e for e in catalog if not e.ok]
    intro = "A spec in the config folder. What each one needs:"
    description = intro + " " + "; ".join(f"{e.file}: {e.needs}" for e in good) + "."
    markdown = intro + "\n\n" + "\n".join(f"- `{e.file}`: {e.needs}" for e in good)
    if broken:
        refused = "Not offered, because they do not validate: "
        description += " " + refused + "; ".join(e.error for e in broken)
        markdown += "\n\n" + refused + "\n\n" + "\n".join(f"- {e.error}" for e in broken)
    return Param(
        default_config or first_choice(catalog),
        type="string",
        enum=[e.file for e in good] or [""],
        title="Sweep config",
        description=description,
        description_md=markdown,
    )


def _params(default_config: str | None, catalog: list[Any]) -> dict[str, Param]:
    from hpo_core.pipeline import POD_REQUEST_SCHEMA

    return {
        "config": _config_param(default_config, catalog),
        "workers": Param(
            2,
            type="integer",
            minimum=1,
            maximum=64,
            title="Workers",
            description="Worker processes (or pods) sharing the trial budget, in parallel.",
        ),
        "mode": Param(
            "local",
            type="string",
            enum=["local", "kubernetes"],
            title="Worker mode",
            description="local: processes on the Airflow worker; kubernetes: one pod per worker.",
        ),
        "n_trials": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Trial budget",
            description="Overrides the spec's n_trials (empty: the spec's).",
        ),
        "gpus": Param(
            None,
            type=["null", "string"],
            maxLength=4096,
            pattern=r"^[A-Za-z0-9/, -]*$",
            title="GPUs (local mode)",
            description="GPUs to place local workers on, round robin: e.g. 0,1 or GPU-/MIG- "
            "UUIDs (empty: CUDA_VISIBLE_DEVICES, else what nvidia-smi -L lists).",
        ),
        "workers_per_gpu": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Workers per GPU (local mode)",
            description="Put this many local workers on each GPU in turn (empty: round robin).",
        ),
        "allow_cpu": Param(
            False,
            type="boolean",
            title="Allow CPU (no GPU check failure)",
            description="Let a config that trains torch models run on the CPU when no GPU is "
            "found (slow, for trying things out). Configs that need no GPU ignore it.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run: checks only",
            description="The pre-launch checks and the study's preparation: no worker runs and "
            "no champion is trained.",
        ),
        "min_free_gb": Param(
            10,
            type="number",
            minimum=0,
            title="Minimum free disk (GB)",
            description="The disk check fails with less free space than this in the run folder.",
        ),
        "smoke": Param(
            True,
            type="boolean",
            title="Run the smoke trial",
            description="One short trial in a scratch study before launch, to catch a spec "
            "that cannot train (off: the smoke check is a warning).",
        ),
        "manifest": Param(
            None,
            type=["null", "string"],
            maxLength=4096,
            title="Data manifest",
            description="A sha256sum listing of the data files to verify: a file in the config "
            "folder or in the spec's data folder.",
        ),
        "pod": Param(
            {},
            title="Worker pod resources",
            description="kubernetes mode: gpus, cpu, memory per worker (e.g. {\"gpus\": 2, "
            "\"memory\": \"32Gi\"}), at most the deployment's maxima. Image, namespace, "
            "Secret and the rest come from the hpo_kubernetes connection only.",
            **POD_REQUEST_SCHEMA,
        ),
    }


def build_sweep_dag(
    dag_id: str,
    *,
    schedule: str | list[Any] | None,
    config: str | None,
    catalog: list[Any],
    checks_only: bool = False,
    generation: bool = False,
    gates: int | None = None,
) -> Any:
    """The sweep DAG; with ``checks_only``, the pre-launch DAG (plan and checks, nothing runs).
    ``gates``: the checkpoints it can decide at (a scheduled DAG: its spec's; else the most
    any spec may have, :data:`hpo_core.pipeline.MAX_GATES`), each a gate and a segment after."""
    from hpo_core.airflow import (
        ChampionApprovalOperator,
        GateOverrideOperator,
        SweepWorkerPodOperator,
        task_failure_alert,
    )
    from hpo_core.pipeline import CHAMPION_ALIAS, MAX_GATES, NEXT_SPEC_ALIAS

    n_gates = MAX_GATES if gates is None else min(gates, MAX_GATES)

    def run_plan() -> Any:
        """The run's plan (the first task's XCom): read where needed rather than passed as an
        argument, so that the graph has no edge from `plan` to every task."""
        from hpo_core.pipeline import RunPlan

        return RunPlan.from_dict(get_current_context()["ti"].xcom_pull(task_ids="plan"))

    @dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=PRELAUNCH_DOC if checks_only else __doc__,
        default_args={
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "on_failure_callback": task_failure_alert,
        },
        params=_params(config, catalog),
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=DEADLINE,
            callback=AsyncCallback(
                "hpo_core.airflow.notifications.deadline_alert",
                kwargs={"hours": DEADLINE / timedelta(hours=1)},
            ),
        ),
        tags=[
            "sweepflow",
            "hpo",
            "prelaunch"
            if checks_only
            else "generation"
            if generation
            else "scheduled"
            if schedule
            else "manual",
        ],
    )
    def sweep() -> None:
        @task
        def plan() -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from hpo_core.airflow import pod_connection_extra, storage_url
            from hpo_core.errors import HpoError
            from hpo_core.pipeline import plan_run

            context = get_current_context()
            params = dict(context["params"])
            # the pod's image, namespace, Secret...: the deployment's connection, never the run's
            pods = pod_connection_extra() if params.get("mode") == "kubernetes" else None
            # a generation DAG: the refined spec the triggering event's study recorded
            next_spec = _next_generation(context, config) if generation else None
            try:
                return plan_run(
                    params,
                    run_id=context["run_id"],
                    pod_connection=pods,
                    # a stopped study fails here, saying who stopped it (the checks DAG only
                    # reads the spec: it does not look at the study)
                    storage_url=None if checks_only else storage_url(),
                    max_gates=n_gates,
                    next_spec=next_spec,
                ).as_dict()
            except HpoError as exc:  # a mistake, or a stop on purpose: a retry cannot fix it
                raise AirflowFailException(str(exc)) from None

        @task_group(group_id="prelaunch")
        def prelaunch(plan: Any) -> Any:
            # A failed check is a red task whose failure is its reason (no retry: a retry finds
            # the same); the checklist alone alerts, once, naming every failed check.
            @task(on_failure_callback=[])
            def check(name: str, plan: dict[str, Any]) -> dict[str, Any]:
                from dataclasses import asdict
                from pathlib import Path

                from airflow.sdk.exceptions import AirflowFailException

                from hpo_core import checks
                from hpo_core.airflow import storage_url, tracking_uri
                from hpo_core.pipeline import RunPlan, check_run_gpu

                context = get_current_context()
                params = context["params"]
                config = plan["config"]
                run: Callable[[], Any] = {
                    "spec": lambda: checks.check_spec(config),
                    "storage": lambda: checks.check_storage(storage_url()),
                    # the manifest is a trigger user's choice: confined to the config and
                    # data folders, and never quoted
                    "data": lambda: checks.check_data(
                        config, manifest=params.get("manifest"), confine_manifest=True
                    ),
                    # local mode: what each worker process will get; pods get theirs from
                    # Kubernetes; an objective without torch needs none
                    "gpu": lambda: check_run_gpu(RunPlan.from_dict(plan)),
                    "disk": lambda: checks.check_disk(
                        Path(plan["run_dir"]), min_free_gb=float(params.get("min_free_gb", 10))
                    ),
                    "dependencies": lambda: checks.check_dependencies(
                        config, tracking=plan["tracking"]
                    ),
                    "tracking": lambda: checks.check_tracking(
                        tracking_uri() if plan["tracking"] else None
                    ),
                    "smoke": lambda: checks.check_smoke(config),
                }[name]
                if name == "smoke" and not params.get("smoke", True):
                    result = checks.CheckResult(name, "warn", "skipped by the run's params")
                else:
                    result = run()
                # under its own key, so that the checklist reads a failed check's result too
                context["ti"].xcom_push(key="result", value=asdict(result))
                context["ti"].xcom_push(key="line", value=result.line)
                print(result.line)
                if result.status == "fail":
                    raise AirflowFailException(f"pre-launch check {name} failed: {result.reason}")
                return asdict(result)

            # runs whatever the checks' states; its rendered field `templates_dict` shows the
            # whole checklist on the run (Airflow 3.3 gives a task no way to set the run's note)
            @task(
                trigger_rule="all_done",
                templates_dict={
                    "checklist": [
                        f"{{{{ ti.xcom_pull(task_ids='prelaunch.check_{name}', key='line') "
                        f"or 'not run: {name}' }}}}"
                        for name in CHECKS
                    ]
                },
            )
            def checklist() -> str:
                from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

                from hpo_core.checks import Checklist, CheckResult

                ti = get_current_context()["ti"]
                plan = ti.xcom_pull(task_ids="plan")
                if not plan:
                    raise AirflowSkipException("nothing was checked: see the plan task's failure")
                results = []
                for name in CHECKS:
                    found = ti.xcom_pull(task_ids=f"prelaunch.check_{name}", key="result")
                    results.append(
                        CheckResult(**found)
                        if found
                        else CheckResult(name, "fail", "the check did not report: see its log")
                    )
                listed = Checklist(plan["config_name"], plan["study_name"], results)
                for r in listed.results:  # first in the log: every result, one line each
                    print(r.line)
                files = listed.write(f"{plan['run_dir']}/checklist")
                print(f"checklist: {files[0]}")
                if not listed.ok:
                    names = ", ".join(r.name for r in listed.failed)
                    raise AirflowFailException(
                        f"pre-launch check(s) failed: {names} (checklist: {files[0]})"
                    )
                return str(files[0])

            # at build time a task call returns an XComArg (what the typing of the task's
            # arguments does not say), here and below
            checked: list[Any] = [
                check.override(task_id=f"check_{name}")(name, plan) for name in CHECKS
            ]
            listed: Any = checklist()
            checked >> listed
            return listed

        @task
        def prepare(plan: dict[str, Any], checklist_path: str) -> dict[str, Any]:
            from hpo_core.airflow import storage_url, tracking_uri
            from hpo_core.pipeline import RunPlan, prepare_sweep

            run = RunPlan.from_dict(plan)
            return prepare_sweep(
                run,
                storage_url=storage_url(),
                tracking_uri=tracking_uri() if run.tracking else None,
            )

        @task
        def local_slots(segment: int) -> list[Any]:
            """The segment's local workers (none in kubernetes mode)."""
            from hpo_core.pipeline import worker_slots

            run = run_plan()
            return worker_slots(run, segment) if run.mode == "local" else []

        @task
        def pod_slots(segment: int) -> list[Any]:
            """The segment's worker pods' arguments and settings (none in local mode)."""
            from hpo_core.pipeline import pod_arguments, worker_slots

            run = run_plan()
            if run.mode != "kubernetes":
                return []
            return [
                {"arguments": pod_arguments(run, s), "pod_settings": run.pod}
                for s in worker_slots(run, segment)
            ]

        @task(map_index_template="{{ task.op_kwargs['slot']['worker_id'] }}")
        def local_worker(slot: dict[str, Any]) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from hpo_core.airflow import storage_url, tracking_uri
            from hpo_core.errors import StudyStopped
            from hpo_core.pipeline import run_local_worker

            run = run_plan()
            try:
                # the worker's progress, line by line, into this task's log
                return run_local_worker(
                    run,
                    slot,
                    storage_url=storage_url(),
                    tracking_uri=tracking_uri() if run.tracking else None,
                    on_progress=lambda line: print(line, flush=True),
                )
            except StudyStopped as exc:  # stopped by someone on purpose: a retry would too
                raise AirflowFailException(str(exc)) from None

        @task.branch(trigger_rule="none_failed")
        def gate(segment: int) -> list[str]:
            from airflow.sdk.exceptions import AirflowSkipException

            from hpo_core.airflow import storage_url
            from hpo_core.pipeline import gate as decide_gate
            from hpo_core.pipeline import gate_skip_reason

            run = run_plan()
            why = gate_skip_reason(run, segment)
            if why:  # skipped, and with it what follows it: the next segment and stop
                print(f"gate {segment}: {why}")
                raise AirflowSkipException(why)
            # a person's answer at this checkpoint (spec decision.override), else None
            answer = get_current_context()["ti"].xcom_pull(task_ids=f"review_{segment}")
            decision = decide_gate(run, segment, storage_url=storage_url(), override=answer)
            get_current_context()["ti"].xcom_push(key="decision", value=decision)
            print(
                f"gate {segment}: {decision['action']} ({decision['rule']}): {decision['message']}"
            )
            if decision["action"] == "stop":
                return [f"stop_{segment}"]
            if decision["action"] == "done":
                return []
            return [f"segment_{segment + 1}.local_slots", f"segment_{segment + 1}.pod_slots"]

        @task
        def stop(segment: int) -> str:
            from hpo_core.airflow import alert, storage_url
            from hpo_core.pipeline import stop_sweep

            run = run_plan()
            ti = get_current_context()["ti"]
            decision = ti.xcom_pull(task_ids=f"gate_{segment}", key="decision") or {}
            reason = stop_sweep(
                run,
                decision,
                storage_url=storage_url(),
                by=f"DAG run {get_current_context()['run_id']} (gate_{segment})",
            )
            figures = decision.get("figures", {})
            alert(
                f"sweep {run.study_name} stopped at checkpoint {decision.get('checkpoint_target')}",
                f"{reason}. Finished {figures.get('finished')} of {figures.get('n_trials')}, "
                f"best {figures.get('best')}, failure rate {figures.get('failure_rate')}. "
                f"Report: {run.run_dir}/report/report.md",
                run_dir=run.run_dir,
            )
            return reason

        # outlets: the refined next spec and a new champion, as asset events through aliases
        # (the concrete asset, by chain or model, is known only when the run's spec is)
        @task(
            trigger_rule="none_failed_min_one_success",
            outlets=[AssetAlias(NEXT_SPEC_ALIAS), AssetAlias(CHAMPION_ALIAS)],
        )
        def finish(plan: dict[str, Any]) -> dict[str, Any]:
            from hpo_core.airflow import alert, storage_url, tracking_uri
            from hpo_core.pipeline import RunPlan, finish_alerts, finish_sweep

            run = RunPlan.from_dict(plan)
            ti = get_current_context()["ti"]
            decisions = [ti.xcom_pull(task_ids=f"gate_{i}", key="decision") for i in range(n_gates)]
            decision = next((d for d in reversed(decisions) if d), None)
            summary = finish_sweep(
                run,
                storage_url=storage_url(),
                tracking_uri=tracking_uri() if run.tracking else None,
                decision=decision,
            )
            for subject, text in finish_alerts(summary):
                alert(subject, text, run_dir=run.run_dir)
            _emit_asset_events(summary)
            print(Path(run.run_dir, "summary.md").read_text())
            return {k: summary[k] for k in ("study", "best_value", "champion", "report")}

        @task(outlets=[AssetAlias(CHAMPION_ALIAS)])
        def promote() -> dict[str, Any]:
            """The person's answer to the champion approval: the alias moves (the champion's
            asset event is sent here then, not by finish) or stays."""
            from hpo_core.airflow import storage_url, tracking_uri
            from hpo_core.pipeline import Answer, decide_champion

            run = run_plan()
            answer = get_current_context()["ti"].xcom_pull(task_ids="approve_champion")
            summary = decide_champion(
                run,
                Answer.from_dict(answer),
                storage_url=storage_url(),
                tracking_uri=tracking_uri(),
            )
            _emit_asset_events(summary, only=CHAMPION_ALIAS)
            print(Path(run.run_dir, "summary.md").read_text())
            return {k: summary[k] for k in ("study", "champion")}

        planned: Any = plan()
        checked: Any = prelaunch(planned)
        if checks_only:
            return
        ready = prepare(planned, checked)
        previous: Any = ready
        # finish follows the last segment's workers and every stop task: a segment starts
        # after the gate before it, which waits for that segment's workers, so every worker
        # has finished when finish starts (earlier workers need no edge to it). `prepare`
        # gives it one success when all else is skipped (a dry run, a sweep done early), and
        # no gate is its direct upstream (a branch would skip it).
        ends: list[Any] = [ready]
        for i in range(n_gates + 1):

            @task_group(group_id=f"segment_{i}")
            def segment(index: int, upstream: Any) -> Any:
                local_found = local_slots(index)
                pod_found = pod_slots(index)
                upstream >> [local_found, pod_found]
                local = local_worker.override(task_id="local_workers").expand(slot=local_found)
                pods = SweepWorkerPodOperator.partial(task_id="worker_pods").expand_kwargs(
                    pod_found
                )
                return [local, pods]

            workers: Any = segment(i, previous)
            if i == n_gates:
                ends.extend(workers)
            else:
                decided = gate.override(task_id=f"gate_{i}")(i)
                # a person may override the gate (decision.override; skipped when not asked)
                reviewed = GateOverrideOperator(
                    task_id=f"review_{i}", segment=i, trigger_rule="none_failed"
                )
                workers >> reviewed >> decided
                stopped = stop.override(task_id=f"stop_{i}")(i)
                decided >> stopped
                ends.append(stopped)
                previous = decided
        done = finish(planned)
        ends >> done
        # a person approves before @champion moves (champions.approval; skipped when not asked)
        done >> ChampionApprovalOperator(task_id="approve_champion") >> promote()

    return sweep()


def _emit_asset_events(summary: dict[str, Any], *, only: str | None = None) -> None:
    """The finish step's asset events: the refined next spec, a new champion (figures only:
    a consumer never trusts a path from them, :func:`_next_generation`); ``only``: those of
    one alias (a champion approved by a person: its event comes from `promote`)."""
    from hpo_core.pipeline import sweep_asset_events

    outlet_events = get_current_context()["outlet_events"]
    for event in sweep_asset_events(summary):
        if only is not None and event.alias != only:
            continue
        outlet_events[AssetAlias(event.alias)].add(Asset(event.asset), extra=event.extra)
        print(f"asset event {event.asset}: {event.extra}")


def _next_generation(context: Any, config: str | None) -> str:
    """The refined spec a generation DAG runs: resolved from the latest triggering event's
    study record (the event's extra names the study, nothing else is read from it); skipped at
    the chain's generation limit, failed in one line on an event that does not match."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from hpo_core.airflow import storage_url
    from hpo_core.errors import HpoError
    from hpo_core.pipeline import GenerationLimit, resolve_next_generation

    events = [e for found in context["triggering_asset_events"].values() for e in found]
    if not events:
        raise AirflowFailException(
            f"no refined-spec event triggered this run: it starts when a sweep of {config} "
            "finishes with a next spec"
        )
    latest = max(events, key=lambda e: e.timestamp)
    try:
        found = resolve_next_generation(
            dict(latest.extra), config=str(config), storage_url=storage_url()
        )
    except GenerationLimit as exc:
        raise AirflowSkipException(str(exc)) from None
    except HpoError as exc:
        raise AirflowFailException(str(exc)) from None
    print(f"generation {found.generation}: {found.study} from {found.source} ({found.path})")
    return found.path


def _generation_dags(catalog: list[Any]) -> dict[str, Any]:
    """One DAG per valid spec with `next: {auto: true}` (`hpo_next__<file>`), scheduled on its
    chain's refined-spec asset: each finished sweep of the chain starts the next generation."""
    import logging

    from hpo_core.pipeline import next_spec_asset

    dags = {}
    for entry in catalog:
        if entry.ok and entry.max_generations:
            dag_id = entry.dag_id.replace("hpo_sweep__", "hpo_next__", 1)
            try:
                dags[dag_id] = build_sweep_dag(
                    dag_id,
                    schedule=[Asset(next_spec_asset(entry.study_name))],
                    config=entry.file,
                    catalog=catalog,
                    generation=True,
                )
            except Exception as exc:  # one broken DAG never hides the others
                logging.getLogger(__name__).error("no generation DAG for %s: %s", entry.file, exc)
    return dags


def _scheduled_dags(catalog: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """One scheduled DAG per valid spec with a `schedule:` key, by DAG id, each built on its own:
    one that Airflow still refuses is logged and marked broken in the returned catalog, and
    every other DAG loads."""
    import dataclasses
    import logging

    dags, checked = {}, []
    for entry in catalog:
        if entry.ok and entry.schedule:
            try:
                # its spec is known: only the gates and segments its checkpoints need
                dags[entry.dag_id] = build_sweep_dag(
                    entry.dag_id,
                    schedule=entry.schedule,
                    config=entry.file,
                    catalog=catalog,
                    gates=len(entry.checkpoints),
                )
            except Exception as exc:
                error = f"{entry.file}: schedule: {str(exc).splitlines()[0] if str(exc) else exc!r}"
                logging.getLogger(__name__).error("no scheduled DAG: %s", error)
                entry = dataclasses.replace(entry, error=error)
        checked.append(entry)
    return dags, checked


_SCHEDULED, _CATALOG = _scheduled_dags(_catalog())
globals().update(_SCHEDULED)
globals().update(_generation_dags(_CATALOG))

# The UI DAG: any config, chosen in the form.
hpo_sweep = build_sweep_dag("hpo_sweep", schedule=None, config=None, catalog=_CATALOG)

# The checklist alone: the same checks, no study touched.
hpo_prelaunch = build_sweep_dag(
    "hpo_prelaunch", schedule=None, config=None, catalog=_CATALOG, checks_only=True
)


if __name__ == "__main__":
    hpo_sweep.test()

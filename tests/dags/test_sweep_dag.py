"""The sweep DAG end to end with `dag.test()`: local workers on the test PostgreSQL, a real MLflow
store, the gate continuing or stopping (with an alert to a real webhook), and pre-launch failures
stopping the run at the right check before any worker starts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.pipeline import finish_sweep, plan_run, prepare_sweep
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_STOP, load_study
from tests.airflow_env import AIRFLOW_HOME, run_dag
from tests.dags.reviewers import USERS, Reviewers
from tests.helpers import REPO, tiny_arc_spec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

TINY_ARC = tiny_arc_spec(
    study_name="dag_arc_v1",
    n_trials=6,
    decision={"checkpoints": [3]},
    champions={"top_k": 1, "epochs": 2, "seeds": 1},
)
BASE_CONF = {"workers": 2, "allow_cpu": True, "min_free_gb": 0.01}


class Webhook:
    """A real HTTP endpoint on loopback that records what it receives."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def _setup(tmp_path: Path, specs: dict[str, dict[str, Any]], storage: str) -> dict[str, str]:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    for name, spec in specs.items():
        (configs / name).write_text(yaml.safe_dump(spec))
    return {
        "SWEEPFLOW_CONFIG_DIR": str(configs),
        "HPO_HOME": str(tmp_path / "home"),
        "AIRFLOW_CONN_HPO_STORAGE": storage,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }


def _asset_events(*names: str) -> dict[str, dict[str, Any]]:
    """The latest event of each named asset in Airflow's metadata database: its extra and the
    aliases it was emitted through."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found = {}
    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name.in_(names))
            .order_by(AssetEvent.timestamp)
        )
        for event in session.scalars(query):
            found[event.asset.name] = {
                "extra": dict(event.extra),
                "aliases": [a.name for a in event.source_aliases],
            }
    return found


def _rendered(output: str, task_id: str) -> dict[str, Any]:
    """A task's rendered template fields in the run that ``output`` (a dag_test.py run's) ran, as
    Airflow stored them for the UI's Rendered Templates tab."""
    import re

    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found = re.search(r"^hpo_sweep run (\S+): ", output, re.MULTILINE)
    assert found, output[-2000:]
    with create_session() as session:
        fields = session.scalar(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.run_id == found[1],
                RenderedTaskInstanceFields.task_id == task_id,
            )
        )
    assert fields is not None, task_id
    return dict(fields)


def _run_dir(tmp_path: Path, study: str) -> Path:
    (run,) = (tmp_path / "home" / "runs" / study).iterdir()
    return run


# people in the loop: a person may override the gate, and approves the champion (left to its
# timeout, whose default here is approve)
REVIEWED_ARC = {
    **TINY_ARC,
    "decision": {"checkpoints": [3], "override": {"timeout": "1h"}},
    "champions": {
        **TINY_ARC["champions"],
        "approval": {"required": True, "timeout": "1s", "default": "approve"},
    },
}


@pytest.mark.e2e  # with the browser test in make e2e: make test stays under 15 minutes
@pytest.mark.postgres
def test_a_sweep_runs_end_to_end_and_registers_a_champion(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep end to end, with people in the loop: the gate's override answered through
    Airflow's REST API by the one user the deployment lets respond, the champion's approval
    left to its timeout."""
    env = _setup(tmp_path, {"arc.yaml": REVIEWED_ARC}, pg_url)
    env["AIRFLOW_VAR_SWEEPFLOW_RESPONDENTS"] = "reviewer"
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    with Reviewers(
        "hpo_sweep",
        {"review_0": "Continue"},
        not_offered={"review_0": "Extend budget"},  # the spec offers no extension
        left_to_time_out={"approve_champion"},
    ) as people:
        result = run_dag({**BASE_CONF, "config": "arc.yaml"}, env)
    assert people.errors == [], people.errors
    tis = result["tis"]
    assert result["state"] == "success", result["output"][-4000:]
    _assert_people_in_the_loop(people, tis, tmp_path, pg_url)
    assert all(tis[f"prelaunch.check_{n}"] == "success" for n in ("spec", "storage", "smoke"))
    assert tis["segment_0.local_workers[0]"] == tis["segment_0.local_workers[1]"] == "success"
    assert tis["gate_0"] == "success" and tis["stop_0"] == "skipped"
    assert tis["segment_1.local_workers[0]"] == "success"
    assert tis["segment_0.worker_pods"] == "skipped" and tis["segment_2.local_slots"] == "skipped"
    assert tis["finish"] == "success"

    sweep = load_study("dag_arc_v1", open_storage(pg_url))
    states = [t.state.name for t in sweep.study.get_trials()]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states
    # the study's current decision is the final one (optuna-dashboard shows it); the gate's is
    # its history
    decision = sweep.study.user_attrs["sweepflow.decision"]
    assert decision["final"] and (decision["action"], decision["rule"]) == ("done", "budget")
    history = sweep.study.user_attrs["sweepflow.decisions"]
    assert [(e["checkpoint"], e["action"]) for e in history] == [(3, "continue")]

    run = _run_dir(tmp_path, "dag_arc_v1")
    checklist = json.loads((run / "checklist" / "checklist.json").read_text())
    assert checklist["ok"] and len(checklist["checks"]) == 8
    # each worker's progress streamed into its task log, which ends with the worker's own log
    output = result["output"]
    finished = r"trial \d+ finished: value \S+ in [\d.]+s; best so far \S+ \(trial \d+"
    assert re.search(finished, output), output[-4000:]
    assert len(re.findall(rf"{finished}|trial \d+ pruned in ", output)) == 6
    for worker in ("s0-w0", "s0-w1", "s1-w0"):
        log = run / "logs" / f"dag_arc_v1-{worker}.log"
        assert f"worker dag_arc_v1-{worker}: its log is {log}" in output and log.is_file()
    # a gate past the last checkpoint says why it has nothing to decide, and is skipped
    assert tis["gate_1"] == tis["gate_2"] == "skipped"
    assert "gate 1: no checkpoint after 3 trials: nothing to decide" in output
    assert (run / "report" / "report.md").is_file() and (
        run / "report" / "next_spec.yaml"
    ).is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["champion"]["model"] == "dag_arc" and summary["champion"]["version"] == "1"
    assert summary["decision"]["action"] == "continue"

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert client.get_model_version_by_alias("dag_arc", "champion").version in ("1", 1)
    # approved on timeout: the version's record says so, no longer pending
    approved = client.get_model_version("dag_arc", "1")
    assert approved.tags["sweepflow.approval"].startswith("approved by nobody (the timeout")
    assert approved.description.endswith(approved.tags["sweepflow.approval"])
    experiment = client.get_experiment_by_name("dag_arc_v1")
    runs = client.search_runs([experiment.experiment_id])
    roles = sorted(r.data.tags["sweepflow.role"] for r in runs)
    assert roles == ["champion", "champion_group", "parent", *["trial"] * 6]
    parent = next(r for r in runs if r.data.tags["sweepflow.role"] == "parent")
    assert parent.data.metrics["trials_complete"] == 6
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(summary["best_value"])
    assert parent.data.tags["sweepflow.final_decision"] == "done"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report", "summary.md", "spec.yaml"} <= artifacts

    # the finish step's outlets: the refined next spec and the new champion as asset events,
    # their figures in the extra, read back from Airflow's metadata database
    events = _asset_events("sweepflow.next_spec.dag_arc_v1", "sweepflow.champion.dag_arc")
    nxt, champion = events["sweepflow.next_spec.dag_arc_v1"], events["sweepflow.champion.dag_arc"]
    assert nxt["aliases"] == ["sweepflow.next_spec"]
    assert champion["aliases"] == ["sweepflow.champion"]
    assert nxt["extra"]["study"] == "dag_arc_v1" and nxt["extra"]["generation"] == 1
    assert nxt["extra"]["family"] == "dag_arc" and nxt["extra"]["best_value"] == pytest.approx(
        summary["best_value"]
    )
    assert nxt["extra"]["next_spec"] == str(
        (run / "report" / "next_spec.yaml").relative_to(tmp_path / "home")
    )
    assert nxt["extra"]["spec_hash"] == summary["generation"]["next"]["spec_hash"]
    assert champion["extra"]["model"] == "dag_arc" and champion["extra"]["version"] == "1"
    assert champion["extra"]["mean"] == pytest.approx(summary["champion"]["mean"])

    # the finish task again (a retry, or a re-trigger after the budget is used): nothing is
    # duplicated. In process, with the DAG's own calls: a second dag.test() costs ~40 s, and the
    # workers' budget on a re-run is tested in tests/worker.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = plan_run({**BASE_CONF, "config": "arc.yaml"}, run_id="retried", storage_url=pg_url)
    prepare_sweep(plan, storage_url=pg_url, tracking_uri=env["MLFLOW_TRACKING_URI"])
    again = finish_sweep(
        plan, storage_url=pg_url, tracking_uri=env["MLFLOW_TRACKING_URI"], decision=None
    )
    sweep = load_study("dag_arc_v1", open_storage(pg_url))
    assert len(sweep.study.get_trials()) == 6
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["sweepflow.role"] for r in runs) == roles
    assert again["champion"]["version"] == "1"


def _assert_people_in_the_loop(
    people: Reviewers, tis: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    assert tis["review_0"] == tis["approve_champion"] == tis["promote"] == "success"
    assert tis["review_1"] == tis["review_2"] == "skipped"  # no checkpoint: nobody is asked
    gate = people.requests["review_0"]
    # only the offered options (no extension in this spec), only the deployment's respondents
    assert gate["options"] == ["Automatic", "Continue", "Stop"] and gate["defaults"] == [
        "Automatic"
    ]
    assert gate["assigned_users"] == [{"id": "reviewer", "name": "reviewer"}]
    assert people.probes["review_0"] == (403, 400)
    assert "**The rules say: continue**" in gate["body"] and "| finished | 3 |" in gate["body"]
    approval = people.requests["approve_champion"]
    assert approval["responded_by_user"] is None and approval["chosen_options"] == ["Approve"]
    assert approval["subject"] == "Approve dag_arc version 1 as @champion?"
    body = approval["body"]
    assert "| new |" in body and "(no champion yet)" in body and "MLflow runs:" in body
    assert "- mean over seeds: " in body  # the group run, whose mean the decision used
    assert '"lr":' in body and "No answer within 1s: **Approve**" in body
    run = _run_dir(tmp_path, "dag_arc_v1")
    summary = json.loads((run / "summary.json").read_text())
    override = summary["decision"]["override"]
    assert summary["decision"]["rule"] == "override" and override["by"] == "reviewer (reviewer)"
    assert [o["choice"] for o in summary["overrides"]] == ["Continue"]
    champion = summary["champion"]
    assert champion["promoted"] and champion["approval"]["by"] is None
    assert champion["group_run"]["run_id"] in body  # its link is in the request
    assert champion["approval"]["outcome"] == "alias moved"
    text = (run / "summary.md").read_text()
    assert "- overrides: checkpoint 3: Continue by reviewer (reviewer) (the rules said" in text
    # rewritten after the approval, it still gives the final decision and the gate's as history
    assert f"- decision: done (budget): {summary['final_decision']['message']}\n" in text
    assert "\n  - checkpoint 3: continue (override), best then " in text
    assert "approved by nobody (the timeout default)" in text
    sweep = load_study("dag_arc_v1", open_storage(pg_url))
    assert sweep.study.user_attrs["sweepflow.overrides"][0]["by"] == "reviewer (reviewer)"
    # each request was announced to the people who may answer (here: logged and recorded)
    alerts = [json.loads(line) for line in (run / "alerts.jsonl").read_text().splitlines()]
    asked = [a["subject"] for a in alerts if a["subject"].startswith("sweepflow: waiting for")]
    assert asked == [
        "sweepflow: waiting for a person: " + gate["subject"],
        "sweepflow: waiting for a person: " + approval["subject"],
    ]


def test_the_prelaunch_dag_checks_and_touches_no_study(tmp_path: Path) -> None:
    spec = {
        "study_name": "checked_v1",
        "n_trials": 4,
        # user code, so a GPU is wanted: the GPU check places each worker (the built-in
        # synthetic objective needs none, tests/pipeline/test_dag_steps.py)
        "objective": "hpo_core.testing.objectives:slow",
        "data": {"seconds": 0.05},
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    storage = tmp_path / "studies.journal"
    env = _setup(tmp_path, {"checked.yaml": spec}, f"journal://{storage}")
    result = run_dag({**BASE_CONF, "config": "checked.yaml"}, env, dag_id="hpo_prelaunch")
    assert result["state"] == "success", result["output"][-4000:]
    assert set(result["tis"]) == {"plan", "prelaunch.checklist"} | {
        f"prelaunch.check_{n}"
        for n in ("spec", "storage", "data", "gpu", "disk", "dependencies", "tracking", "smoke")
    }
    checklist = json.loads(next((tmp_path / "home").rglob("checklist.json")).read_text())
    assert checklist["ok"] and checklist["study_name"] == "checked_v1"
    (gpu,) = [c["reason"] for c in checklist["checks"] if c["name"] == "gpu"]
    assert "2 workers on the CPU" in gpu or "worker 1: GPU" in gpu, gpu  # local mode: per worker
    import optuna

    assert optuna.get_all_study_summaries(open_storage(f"journal://{storage}").storage) == []


# each case: the spec's changes, the storage URL (None: a journal) and the checks that must fail,
# the first of them named by the checklist. Storage and data break in one run (each dag.test()
# costs about 25 s of Airflow start-up whatever it runs).
BROKEN = {
    "storage_and_data": (
        {
            "fixed": {**TINY_ARC["fixed"], "data_dir": "/nonexistent/arc"},
            "data": {"max_samples": 60},
        },
        "postgresql+psycopg2://hpo:s3cret@127.0.0.1:1/optuna",
        ["storage", "data"],
    ),
    # valid YAML and schema (so the form offers it: a spec that does not validate is not
    # offered, tests/dags/test_broken_configs.py), but the objective cannot build the model
    "spec": (
        {"fixed": {**TINY_ARC["fixed"], "ctx_d_model": 30, "ctx_n_head": 4}},
        None,
        ["spec", "smoke"],  # the smoke trial cannot build the model either
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_failed_check_stops_the_run_before_any_worker(broken: str, tmp_path: Path) -> None:
    changes, storage, failing = BROKEN[broken]
    spec = {**TINY_ARC, "study_name": f"dag_{broken}_v1", **changes}
    env = _setup(
        tmp_path, {"broken.yaml": spec}, storage or f"journal://{tmp_path / 'studies.journal'}"
    )
    result = run_dag({**BASE_CONF, "config": "broken.yaml", "smoke": broken == "spec"}, env)
    tis, output = result["tis"], result["output"]
    assert result["state"] == "failed"
    checks = [k.removeprefix("prelaunch.check_") for k in tis if k.startswith("prelaunch.check_")]
    for name in checks:  # a failed check is a red task, failed once (no retry) with its reason
        assert tis[f"prelaunch.check_{name}"] == ("failed" if name in failing else "success")
    for name in failing:
        assert output.count(f"pre-launch check {name} failed: ") >= 1
    # the checklist still ran, and failed naming every failed check
    assert tis["prelaunch.checklist"] == "failed"
    assert f"pre-launch check(s) failed: {', '.join(failing)} (checklist: " in output
    assert tis["prepare"] == "upstream_failed"
    assert not any(k.startswith("segment_0.local_workers[") for k in tis)
    assert "s3cret" not in output
    (run,) = (tmp_path / "home" / "runs").iterdir()
    checklist = json.loads(next(run.rglob("checklist.json")).read_text())
    failed = [c["name"] for c in checklist["checks"] if c["status"] == "fail"]
    assert failed == failing and len(checklist["checks"]) == 8
    # every result, one line each, together at the top of the checklist's log, and in its
    # rendered field on the run
    lines = [
        f"{c['status'].upper():<4}  {c['name']:<12}  {c['reason']}" for c in checklist["checks"]
    ]
    assert "\n".join(lines) in output
    assert _rendered(output, "prelaunch.checklist")["templates_dict"]["checklist"] == lines
    # one alert for the run (no alert connection here: logged and recorded with the run), from
    # the checklist, naming the failed checks; none per check
    alerts = [json.loads(line) for line in next(run.rglob("alerts.jsonl")).read_text().splitlines()]
    assert len(alerts) == 1, alerts
    assert alerts[0]["subject"] == "sweepflow: a task failed" and alerts[0]["channel"] == "log"
    assert "prelaunch.checklist" in alerts[0]["text"] and "s3cret" not in alerts[0]["text"]
    assert ", ".join(failing) in alerts[0]["text"]


@pytest.mark.postgres
def test_a_failed_trial_rate_over_the_limit_stops_the_sweep_and_alerts(
    pg_url: str, tmp_path: Path, webhook: Webhook
) -> None:
    """A gate that stops (here on the failure rate; each rule's verdict: tests/analysis): the
    stop flag, the skipped segments, no champion, the alerts to a real webhook."""
    spec = {
        "study_name": "dag_failing_v1",
        "n_trials": 12,
        "objective": "hpo_core.testing.objectives:fails_when",
        "data": {"threshold": 0.5},
        "sampler": {"type": "random", "seed": 5},
        "pruner": {"type": "none"},
        "param_ranges": {"x": {"type": "float", "low": 0, "high": 1}},
        "decision": {"checkpoints": [4], "max_failure_rate": 0.2, "min_trials_for_failure_rate": 4},
    }
    env = _setup(tmp_path, {"failing.yaml": spec}, pg_url)
    env["AIRFLOW_CONN_HPO_ALERTS"] = webhook.url
    result = run_dag({**BASE_CONF, "config": "failing.yaml", "workers": 1, "smoke": False}, env)
    tis = result["tis"]
    assert result["state"] == "success", result["output"][-4000:]
    assert tis["gate_0"] == "success" and tis["stop_0"] == "success"
    assert tis["segment_1.local_slots"] == "skipped"
    assert tis["segment_1.local_workers"] == "skipped" and tis["finish"] == "success"
    # failed trials show in the worker's task log as they happen
    assert re.search(r"trial \d+ failed in [\d.]+s: ", result["output"]), result["output"][-3000:]
    sweep = load_study("dag_failing_v1", open_storage(pg_url))
    assert sweep.study.user_attrs[ATTR_STOP]
    assert sum(t.state.name == "COMPLETE" for t in sweep.study.get_trials()) == 4
    # the stopped sweep's final decision (the rules at the end) and the gate's, its history
    final = sweep.study.user_attrs["sweepflow.decision"]
    assert final["final"] and (final["action"], final["rule"]) == ("stop", "failure_rate")
    history = sweep.study.user_attrs["sweepflow.decisions"]
    assert [(e["checkpoint"], e["action"]) for e in history] == [(4, "stop")]
    run = _run_dir(tmp_path, "dag_failing_v1")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["champion"] is None and "stopped" in summary["champions_skipped"]
    alerts = [json.loads(line) for line in (run / "alerts.jsonl").read_text().splitlines()]
    # recorded by scheme and host only: a webhook's token lives in its path
    assert alerts[0]["channel"] == f"http://127.0.0.1:{webhook.server.server_port}/..."
    # checked at the gate (which stops the sweep) and again at the end
    stopped, rate = webhook.received
    assert stopped["subject"] == "sweep dag_failing_v1 stopped at checkpoint 4"
    assert "\nfailure_rate: " in stopped["text"] and "above the limit of 20%" in stopped["text"]
    assert rate["subject"].startswith("sweep dag_failing_v1: failed-trial rate ")
    assert "above the spec's limit of 20.0%" in rate["text"]


@pytest.mark.e2e  # a whole-product run: make e2e, so that make test stays under 15 minutes
@pytest.mark.postgres
def test_the_binary_family_runs_through_the_same_dag(pg_url: str, tmp_path: Path) -> None:
    """binary_classifier through the DAG the ARC family uses: checks (its data check), workers,
    report, champions, and the threshold step after them; with a password in the storage
    connection that ends up in no output, file, log, XCom or MLflow record."""
    from hpo_core.data import generate_binary_dataset, write_table

    table = tmp_path / "buy.parquet"
    write_table(generate_binary_dataset(5000, seed=3), table)
    spec = yaml.safe_load((REPO / "configs" / "hpo" / "demo_buy_signals.yaml").read_text())
    spec.update(n_trials=4, decision={}, champions={"top_k": 1, "epochs": 2, "seeds": 1})
    spec["data"] = {**spec["data"], "path": str(table)}
    spec["fixed"]["epochs"] = 2
    # a password in the storage connection (the test server trusts loopback, so it is ignored)
    secret = "Pw-9f3e7-NEVER-SHOWN"
    storage = pg_url.replace("://postgres@", f"://postgres:{secret}@")
    env = _setup(tmp_path, {"buy.yaml": spec}, storage)
    result = run_dag({**BASE_CONF, "config": "buy.yaml", "workers": 1}, env)
    assert result["state"] == "success", result["output"][-4000:]
    assert secret not in result["output"]
    # nowhere on disk either: reports, summaries, worker logs, MLflow's store, Airflow's
    # metadata database (XCom, task instances) and task logs
    for root in (tmp_path, AIRFLOW_HOME):
        leaks = [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert leaks == [], leaks
    assert result["tis"]["prelaunch.check_data"] == "success"
    run = _run_dir(tmp_path, "demo_buy_signals_v1")
    checklist = json.loads((run / "checklist" / "checklist.json").read_text())
    data_check = next(c for c in checklist["checks"] if c["name"] == "data")
    assert "positive" in data_check["reason"]
    smoke = next(c for c in checklist["checks"] if c["name"] == "smoke")
    assert "on the whole data set" in smoke["reason"], smoke  # max_samples is not honoured here
    summary = json.loads((run / "summary.json").read_text())
    assert summary["champion"]["model"] == "demo_buy_signals"
    assert summary["thresholds"]["required_precision"] == 0.5
    assert (run / "report" / "thresholds" / "thresholds.md").is_file()
    assert "- thresholds: " in (run / "summary.md").read_text()

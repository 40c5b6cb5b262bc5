"""The DAG's steps warm-start a sweep as the CLI does: prepare copies the fitting trials, and the
segments and the gate count only new trials. The finish step records the final decision."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from hpo_core.pipeline import finish_sweep, gate, plan_run, prepare_sweep, track_sweep
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import is_carried, load_study, study_progress
from hpo_core.worker import run_worker
from tests.helpers import mlflow_client, planted_spec, sweep_runs

SPEC = planted_spec(
    study_name="flat", n_trials=20, sampler={"type": "random", "seed": 2}, metric="val_score"
)


def test_prepare_copies_the_gate_counts_new_trials_and_finish_records_the_final_decision(
    tmp_path: Path, journal_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: the finish step's decision (the report's, over every trial) is THE decision of
    summary.md with the checkpoint's as history, the parent run's figures and tags, and the
    study's current record (final) beside its metric name, which optuna-dashboard shows."""
    run_worker(parse_spec(yaml.safe_dump(SPEC)), journal_url)
    configs = tmp_path / "configs"
    configs.mkdir()
    nxt = {
        **SPEC,
        "study_name": "next",
        "n_trials": 6,
        "decision": {"checkpoints": [3]},
        "warm_start": {"study": "flat"},
    }
    (configs / "next.yaml").write_text(yaml.safe_dump(nxt))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the next sweep's worker records 2 GPUs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"config": "next.yaml", "workers": 1, "allow_cpu": True}
    plan = plan_run(params, run_id="r1", home=tmp_path, storage_url=journal_url)
    assert plan.segments == [3, 6]
    prepared = prepare_sweep(plan, storage_url=journal_url, tracking_uri=uri)
    assert prepared["study"] == "next"
    sweep = load_study("next", open_storage(journal_url))
    assert study_progress(sweep).carried == 20  # the same space: every finished trial fits
    # the first segment's worker (the DAG starts `hpo worker --study next --until 3`)
    report = run_worker("next", journal_url, until=plan.segments[0])
    assert report.complete == 3
    gate(plan, 0, storage_url=journal_url)
    decision = gate(plan, 0, storage_url=journal_url)  # a retried gate replaces its own record
    assert decision["action"] == "continue" and decision["figures"]["finished"] == 3
    assert decision["checkpoint"] == 3
    # the run's summary tells this run's trials from the carried ones
    run_worker("next", journal_url)
    with warnings.catch_warnings():  # a study as an older version left it: not named so
        warnings.simplefilter("ignore")
        sweep.study.set_metric_names(["Objective 0"])
    summary = finish_sweep(plan, storage_url=journal_url, tracking_uri=uri, decision=decision)
    assert (summary["complete"] - summary["carried"], summary["carried"]) == (6, 20)
    text = Path(plan.run_dir, "summary.md").read_text()
    assert "20 completed or pruned were carried in by a warm start" in text

    final = summary["final_decision"]
    assert (final["action"], final["rule"]) == ("done", "budget")
    attrs = load_study("next", open_storage(journal_url)).study.user_attrs
    assert attrs["sweepflow.decision"] == {**final, "final": True}
    (entry,) = attrs["sweepflow.decisions"]
    assert (entry["checkpoint"], entry["action"]) == (3, "continue")
    assert entry["best"] == decision["figures"]["best"]
    assert sweep.study.metric_names == ["val_score"]
    report = Path(plan.run_dir, "report", "report.md").read_text()
    assert f"- decision: done (budget): {final['message']}\n" in text
    assert f"**Decision:** DONE (budget): {final['message']}" in report
    assert (
        f"- checkpoints (history):\n  - checkpoint 3: continue ({entry['rule']}), best then "
        f"{entry['best']:.4g} (trial {entry['best_trial']})\n" in text
    )
    # the parent run's figures: as the report counts (carried trials in), GPU-hours its own
    (parent,) = sweep_runs(uri, "next", "parent")
    trials = sweep.study.get_trials()
    own = [t for t in trials if not is_carried(t)]
    hours = sum((t.datetime_complete - t.datetime_start).total_seconds() / 3600 for t in own)
    expected = {
        "best_val_score": summary["best_value"],
        "mean_val_score": sum(t.value for t in trials) / len(trials),
        "trials_complete": 26,
        "trials_pruned": 0,
        "trials_failed": 0,
        "trials_lost": 0,
        "gpu_hours": 2 * hours,
    }
    assert len(own) == 6
    assert {k: parent.data.metrics.get(k) for k in expected} == pytest.approx(expected)
    tags = parent.data.tags
    assert (tags["sweepflow.final_decision"], tags["sweepflow.final_rule"]) == ("done", "budget")
    # `hpo track` logs them too (`hpo analyze` as the finish step does): a second value of each
    track_sweep(load_study("next", open_storage(journal_url)), uri)
    history = mlflow_client(uri).get_metric_history(parent.info.run_id, "trials_complete")
    assert [m.value for m in history] == [26, 26]

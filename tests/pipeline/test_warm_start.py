"""The DAG's steps warm-start a sweep as the CLI does: prepare copies the fitting trials, and the
segments and the gate count only new trials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo_core.pipeline import finish_sweep, gate, plan_run, prepare_sweep
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import load_study, study_progress
from hpo_core.worker import run_worker
from tests.helpers import planted_spec

SPEC = planted_spec(study_name="flat", n_trials=20, sampler={"type": "random", "seed": 2})


def test_prepare_copies_and_the_gate_counts_new_trials(
    tmp_path: Path, journal_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    params = {"config": "next.yaml", "workers": 1, "tracking": False, "allow_cpu": True}
    plan = plan_run(params, run_id="r1", home=tmp_path, storage_url=journal_url)
    assert plan.segments == [3, 6]
    prepared = prepare_sweep(plan, storage_url=journal_url, tracking_uri=None)
    assert prepared["study"] == "next"
    sweep = load_study("next", open_storage(journal_url))
    assert study_progress(sweep).carried == 20  # the same space: every finished trial fits
    # the first segment's worker (the DAG starts `hpo worker --study next --until 3`)
    report = run_worker("next", journal_url, until=plan.segments[0])
    assert report.complete == 3
    decision = gate(plan, 0, storage_url=journal_url)
    assert decision["action"] == "continue" and decision["figures"]["finished"] == 3
    assert decision["checkpoint"] == 3
    # the run's summary tells this run's trials from the carried ones
    run_worker("next", journal_url)
    summary = finish_sweep(plan, storage_url=journal_url, tracking_uri=None, decision=decision)
    assert (summary["complete"] - summary["carried"], summary["carried"]) == (6, 20)
    text = next(tmp_path.rglob("summary.md")).read_text()
    assert "20 completed or pruned were carried in by a warm start" in text

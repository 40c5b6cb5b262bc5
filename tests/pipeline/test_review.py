"""People in the loop, the workflow side (spec ``decision.override``): what a person is asked at
a gate, and their answer applied: only an offered option, an extension bounded by the spec's
ceiling and applied once per answer, the answer and who gave it recorded in the study. The
Airflow side (the request, the answer through Airflow's REST API, the timeout default) is
tests/dags/test_sweep_dag.py's end-to-end run; the champion approval's alias rule is
tests/champions/test_promotion.py's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpo_core.errors import HpoError
from hpo_core.objectives import load_spec
from hpo_core.pipeline import gate, gate_review, plan_run
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from hpo_core.worker import run_worker
from tests.helpers import base_spec

OVERRIDE = {"timeout": "30m", "extend_trials": 4, "max_n_trials": 16}


def test_a_person_overrides_a_gate_within_the_offered_options(
    journal_url: str,
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_spec(base_spec(decision={"checkpoints": [4], "override": OVERRIDE}))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(config.parent))
    plan = plan_run({"config": config.name}, run_id="r1", home=tmp_path)
    run_worker(load_spec(config), journal_url, until=4)

    asked = gate_review(plan, 0, storage_url=journal_url)
    assert asked is not None
    assert asked.options == ["Automatic", "Continue", "Stop", "Extend budget"]
    assert (asked.default, asked.timeout) == ("Automatic", 1800)
    assert "**The rules say: continue**" in asked.body and "| finished | 4 |" in asked.body
    assert "raised from 10 to 14 trials" in asked.body
    # no question past the last checkpoint
    assert gate_review(plan, 1, storage_url=journal_url) is None

    extend = {"choice": "Extend budget", "by": "Ada (ada)", "at": "2026-11-30T00:00:00+00:00"}
    record = gate(plan, 0, storage_url=journal_url, override=extend)
    assert (record["action"], record["rule"]) == ("continue", "override")
    assert record["automatic"]["action"] == "continue" and "by Ada (ada)" in record["message"]
    # a retried gate task brings the same answer: the budget is not extended twice
    gate(plan, 0, storage_url=journal_url, override=extend)
    attrs = load_study("test_study", open_storage(journal_url)).study.user_attrs
    assert attrs["sweepflow.n_trials"] == 14
    assert attrs["sweepflow.overrides"] == [
        {
            "segment": 0,
            "checkpoint": 4,
            "choice": "Extend budget",
            "by": "Ada (ada)",
            "at": "2026-11-30T00:00:00+00:00",
            "budget": [10, 14],
            "automatic": "continue",
            "action": "continue",
        }
    ]
    # another answer extends again, never past the spec's ceiling; at the ceiling the option is
    # no longer offered, and an answer that names it anyway is refused
    gate(plan, 0, storage_url=journal_url, override={**extend, "at": "later"})
    assert load_study("test_study", open_storage(journal_url)).study.user_attrs[
        "sweepflow.n_trials"
    ] == 16
    asked = gate_review(plan, 0, storage_url=journal_url)
    assert asked is not None and asked.options == ["Automatic", "Continue", "Stop"]
    with pytest.raises(HpoError, match="'Extend budget' is not one of the options offered"):
        gate(plan, 0, storage_url=journal_url, override={**extend, "at": "again"})
    with pytest.raises(HpoError, match="'Approve' is not one of the options offered"):
        gate(plan, 0, storage_url=journal_url, override={"choice": "Approve"})

    # the timeout default (no one answered): the rules' decision, recorded as such
    record = gate(plan, 0, storage_url=journal_url, override={"choice": "Automatic"})
    assert record["rule"] != "override" and record["action"] == "continue"
    assert record["override"]["by"] == "nobody (the timeout default)"
    stopped = gate(plan, 0, storage_url=journal_url, override={"choice": "Stop", "by": "Bo (bo)"})
    assert stopped["action"] == "stop" and stopped["rule"] == "override"


def test_without_override_nobody_is_asked(
    journal_url: str,
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_spec(base_spec(decision={"checkpoints": [4]}))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(config.parent))
    plan = plan_run({"config": config.name}, run_id="r1", home=tmp_path)
    run_worker(load_spec(config), journal_url, until=4)
    assert gate_review(plan, 0, storage_url=journal_url) is None
    record = gate(plan, 0, storage_url=journal_url)
    assert "override" not in record and "automatic" not in record
    attrs = load_study("test_study", open_storage(journal_url)).study.user_attrs
    assert "sweepflow.overrides" not in attrs and attrs.get("sweepflow.n_trials", 10) == 10

"""Finishing a sweep, as both front doors do it: the report's copy on the parent run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo_core.errors import HpoError
from hpo_core.pipeline import publish
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study
from hpo_core.tracking import ATTR_PARENT_RUN, ATTR_TRACKING_URI
from tests.helpers import base_spec, planted_spec


def test_a_tracking_outage_costs_the_command_the_copy_and_fails_the_dag_step(
    journal_url: str, tmp_path: Path
) -> None:
    sweep = create_study(parse_spec(yaml.safe_dump(base_spec())), open_storage(journal_url))
    assert publish(sweep, tmp_path, "report", backfill=True) is None  # not tracked: nothing to do
    sweep.study.set_user_attr(ATTR_PARENT_RUN, "0" * 32)
    sweep.study.set_user_attr(ATTR_TRACKING_URI, "http://127.0.0.1:9")
    done = publish(sweep, tmp_path, "report", backfill=True)  # `hpo analyze`: best effort
    assert done is not None and not done.attached and done.backfilled == 0
    assert done.warning is not None
    assert done.warning.startswith("tracking: cannot reach http://127.0.0.1:9")
    with pytest.raises(HpoError, match="cannot reach"):  # the DAG's finish: Airflow retries it
        publish(sweep, tmp_path, "report", backfill=True, best_effort=False)


def test_a_sweep_a_person_stopped_ends_with_a_stop_not_the_rules_continue(
    journal_url: str, tmp_path: Path
) -> None:
    from hpo_core.analysis import ATTR_DECISION
    from hpo_core.pipeline import report_study
    from hpo_core.study import stop_study
    from hpo_core.worker import run_worker

    loaded = parse_spec(yaml.safe_dump(planted_spec(n_trials=20)))
    sweep = create_study(loaded, open_storage(journal_url))
    run_worker(loaded, journal_url, until=6)  # the rules say continue: budget left, no rule fired
    stop_study(sweep, "enough for today", by="alice")
    done = report_study(sweep, tmp_path, plots=False)
    assert (done.analysis.decision.action, done.analysis.decision.rule) == ("stop", "stopped")
    assert "by alice: enough for today" in done.analysis.decision.message
    record = sweep.study.user_attrs[ATTR_DECISION]
    assert record["final"] is True and record["action"] == "stop"
    assert "**Decision:** STOP (stopped): stopped before the budget by alice" in (
        (tmp_path / "report.md").read_text()
    )


def test_the_ui_link_opens_the_runs_ranked_by_the_score_with_no_credential(
    journal_url: str,
) -> None:
    from hpo_core.pipeline import champion_ui
    from hpo_core.tracking import ATTR_EXPERIMENT

    sweep = create_study(parse_spec(yaml.safe_dump(base_spec())), open_storage(journal_url))
    sweep.study.set_user_attr(ATTR_EXPERIMENT, "7")
    sweep.study.set_user_attr(ATTR_TRACKING_URI, "https://alice:***@mlflow.example:8443/ml/")
    view = "/#/experiments/7/runs?workflowType=machine_learning&orderByKey=metrics.%60{}%60"
    assert champion_ui(sweep) == (
        "https://mlflow.example:8443/ml" + view.format(sweep.spec.metric) + "&orderByAsc=false"
    )
    sweep.study.set_user_attr(ATTR_TRACKING_URI, "sqlite:////data/mlflow.db")
    assert champion_ui(sweep).startswith(
        "mlflow ui --backend-store-uri sqlite:////data/mlflow.db  (then open "
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )

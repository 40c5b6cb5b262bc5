from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo_core.analysis import build_trials_table, decide
from hpo_core.pipeline import finish_sweep
from hpo_core.spec import parse_spec
from hpo_core.worker import run_worker
from tests.helpers import base_spec, planted_spec, run_plan


def _table(
    values: list[float | None],
    decision: dict[str, Any],
    *,
    n_trials: int = 20,
    direction: str = "maximize",
    failed: int = 0,
    lost: int = 0,
):  # type: ignore[no-untyped-def]
    spec = parse_spec(
        yaml.safe_dump(base_spec(n_trials=n_trials, direction=direction, decision=decision))
    ).spec
    dist = {"x": FloatDistribution(0.0, 1.0)}
    trials = []
    for v in values:
        state = TrialState.PRUNED if v is None else TrialState.COMPLETE
        trials.append(create_trial(params={"x": 0.5}, distributions=dist, value=v, state=state))
    trials += [
        create_trial(params={"x": 0.5}, distributions=dist, state=TrialState.FAIL)
        for _ in range(failed)
    ]
    trials += [  # lost to a dead worker: an hour on its 2 GPUs
        create_trial(
            params={"x": 0.5},
            distributions=dist,
            state=TrialState.FAIL,
            user_attrs={"lost_cause": "heartbeat: none for 90s", "worker": {"gpus": ["0", "1"]}},
        )
        for _ in range(lost)
    ]
    for t in trials[len(trials) - lost :]:
        t.datetime_complete = t.datetime_start + timedelta(hours=1)  # type: ignore[operator]
    for number, t in enumerate(trials):
        t.number = number
    return build_trials_table(trials, spec)


@pytest.mark.parametrize(
    ("values", "decision", "kwargs", "action", "rule"),
    [
        (
            [0.5] * 8,
            {"max_failure_rate": 0.2, "min_trials_for_failure_rate": 10},
            {"failed": 4},
            "stop",
            "failure_rate",
        ),
        (
            [0.5] * 8,
            {"max_failure_rate": 0.2, "min_trials_for_failure_rate": 20},
            {"failed": 4},
            "continue",
            "default",
        ),  # too few trials to judge a rate
        (
            [0.5] * 8,
            {"max_failure_rate": 0.2, "min_trials_for_failure_rate": 10},
            {"lost": 4},
            "continue",
            "default",
        ),  # lost to the infrastructure is not failed
        (
            [0.5] * 8,
            {"max_lost_rate": 0.3, "min_trials_for_failure_rate": 10},
            {"lost": 4},
            "stop",
            "lost_rate",
        ),
        (
            [0.5] * 8,
            {"max_lost_rate": 0.3, "min_trials_for_failure_rate": 13},
            {"lost": 4},
            "continue",
            "default",
        ),  # too few trials to judge a rate
        (
            [0.5] * 8,
            {"max_lost_rate": 0.4, "min_trials_for_failure_rate": 10},
            {"lost": 4},
            "continue",
            "default",
        ),  # 4 of 12 lost: under the limit
        ([0.2, 0.31], {"target": 0.3}, {}, "done", "target"),
        ([0.2] * 20, {}, {}, "done", "budget"),
        (
            [0.2] * 10,
            {"checkpoints": [10], "stop_if_best_worse_than": 0.26},
            {},
            "stop",
            "stop_if_best_worse_than",
        ),
        (
            [0.2] * 9,
            {"checkpoints": [10], "stop_if_best_worse_than": 0.26},
            {},
            "continue",
            "default",
        ),  # checkpoint not reached
        (
            [0.2] * 5 + [None] * 5,
            {"checkpoints": [10], "stop_if_best_worse_than": 0.26},
            {},
            "stop",
            "stop_if_best_worse_than",
        ),  # pruned trials count toward the checkpoint
        ([0.9] + [0.5] * 6, {"plateau_trials": 6}, {}, "done", "plateau"),
        (
            [0.9] + [0.5] * 5,
            {"plateau_trials": 6, "on_track_if_best_better_than": 0.3},
            {},
            "continue",
            "on_track",
        ),
        (
            [0.25] * 10,
            {"checkpoints": [10], "stop_if_best_worse_than": 0.26},
            {"direction": "minimize"},
            "continue",
            "default",
        ),  # minimising: 0.25 is better than 0.26
    ],
)
def test_each_rule(values, decision, kwargs, action: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    result = decide(_table(values, decision, **kwargs))
    assert (result.action, result.rule) == (action, rule), result.message
    again = decide(_table(values, decision, **kwargs))
    assert (again.action, again.rule, again.message) == (result.action, result.rule, result.message)


def test_lost_trials_are_counted_apart_with_their_gpu_hours() -> None:
    s = _table([0.5] * 6, {}, failed=1, lost=3).summary
    assert (s.failed, s.lost, s.failure_rate, s.lost_rate) == (1, 3, 1 / 7, 0.3)
    assert (s.hours_lost, s.gpu_hours_lost, s.lost_causes) == (3.0, 6.0, {"heartbeat": 3})
    result = decide(_table([0.5] * 8, {"max_lost_rate": 0.3}, lost=4))
    assert result.message.startswith("4 of 12 trials were lost to the infrastructure (33%;")
    assert "heartbeat 4" in result.message and "keeps killing workers" in result.message
    assert (result.figures["lost"], result.figures["lost_rate"]) == (4, 0.3333)


def test_decision_figures() -> None:
    result = decide(_table([0.1, 0.4, 0.3], {"checkpoints": [2]}))
    assert result.figures["best"] == 0.4 and result.figures["best_trial"] == 1
    assert result.figures["completed_since_best"] == 1 and result.checkpoint == 2
    assert optuna.__version__


def test_a_target_not_reached_by_the_end_of_the_budget_is_said() -> None:
    result = decide(_table([0.2] * 20, {"target": 0.6}))
    assert (result.action, result.rule) == ("done", "budget")
    assert result.message == "all 20 trials finished; best 0.2; target 0.6 not reached"
    assert result.figures["target_reached"] is False
    assert "target" not in decide(_table([0.2] * 20, {})).message


def test_a_target_only_sweep_ending_below_its_target_says_so_in_report_and_summary(
    journal_url: str, tmp_path: Path
) -> None:
    """An in-process sweep of the planted objective (best about 0.8) with an unreachable target
    and no checkpoint: no gate decided, and the report and the summary say the target was not
    reached."""
    spec = planted_spec(study_name="target_only", n_trials=6, decision={"target": 5.0})
    run_worker(parse_spec(yaml.safe_dump(spec)), journal_url)
    plan = replace(
        run_plan(tmp_path / "target_only.yaml", tmp_path / "run"),
        study_name="target_only",
        n_trials=6,
        dry_run=True,
        tracking=False,
        segments=[6],
    )
    summary = finish_sweep(plan, storage_url=journal_url, tracking_uri=None, decision=None)
    assert summary["final_decision"]["rule"] == "budget"
    said = "all 6 trials finished; best "
    markdown = (tmp_path / "run" / "summary.md").read_text()
    assert "- checkpoints: none decided (no checkpoint before the end of the budget)" in markdown
    assert f"- decision: done (budget): {said}" in markdown
    assert markdown.split(said)[1].split("\n")[0].endswith("; target 5 not reached")
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "**Decision:** DONE (budget): all 6 trials finished" in report
    assert "target 5 not reached" in report

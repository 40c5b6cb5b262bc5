"""`hpo replay`: the decision rules replayed over finished studies, trial by trial, in the order
the trials ended."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo_core.analysis import replay_decision
from hpo_core.cli import main
from hpo_core.spec import DecisionSpec, parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import create_study, load_study
from tests.helpers import base_spec, run_hpo

T0 = datetime(2026, 1, 1)
# Trial numbers in the order they end: 12 (the 0.7) runs 2 h and ends between 20 and 21; 3 and 4
# end at the same time; 13 is pruned and 14 fails.
ORDER = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 12, 21, 22, 23]
VALUES = {0: 0.1, 1: 0.2, 2: 0.5, 12: 0.7, 23: 0.9}  # the others: 0.3


def _crafted() -> list[FrozenTrial]:
    """24 trials on 2-GPU workers, 30 min each (trial 12: 2 h), trial i ending at 10 (i + 1) min."""
    trials = []
    for number in range(24):
        end = T0 + timedelta(minutes=10 * (number + 1))
        if number == 4:
            end = T0 + timedelta(minutes=40)  # the same end as trial 3: the number breaks the tie
        if number == 12:
            end = T0 + timedelta(minutes=215)
        state = {13: TrialState.PRUNED, 14: TrialState.FAIL}.get(number, TrialState.COMPLETE)
        t = create_trial(
            params={"x": number / 24},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            value=VALUES.get(number, 0.3) if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={"worker": {"gpus": ["0", "1"]}},
        )
        t.number = number
        t.datetime_complete = end
        t.datetime_start = end - timedelta(hours=2 if number == 12 else 0.5)
        trials.append(t)
    return trials


def _spec(n_trials: int = 24) -> Any:
    return parse_spec(yaml.safe_dump(base_spec(n_trials=n_trials))).spec


def _rule(replay: Any, name: str) -> Any:
    [rule] = [r for r in replay.rules if r.rule == name]
    return rule


def test_each_rule_stops_where_decide_would_in_the_order_trials_ended() -> None:
    trials = _crafted()
    assert [t.number for t in sorted(trials, key=lambda t: (t.datetime_complete, t.number))] == (
        ORDER
    )
    decision = DecisionSpec(checkpoints=[4, 16], stop_if_best_worse_than=0.6, plateau_trials=12)
    # given in any order (here reversed): the replay sorts by end, then number
    replay = replay_decision(trials[::-1], _spec(), decision)
    assert (replay.ended, replay.best, replay.best_trial, replay.n_trials) == (24, 0.9, 23, 24)

    worse = _rule(replay, "stop_if_best_worse_than").stop
    # the first checkpoint (4 finished) is reached when trial 3 ends, tied with 4 and before it
    assert (worse.action, worse.after_trial, worse.ended, worse.checkpoint) == ("stop", 3, 4, 4)
    assert (worse.best, worse.best_missed, worse.trials_saved) == (0.5, pytest.approx(0.4), 20)
    # 19 trials of 30 min and trial 12's 2 h, each on 2 GPUs; the last ends 200 min after it
    assert worse.hours_saved == pytest.approx(19 * 0.5 + 2)
    assert worse.gpu_hours_saved == pytest.approx(2 * (19 * 0.5 + 2))
    assert worse.wall_hours_saved == pytest.approx(200 / 60, abs=1e-4)

    plateau = _rule(replay, "plateau").stop
    # trials 3-11, 15, 16, 17 completed after trial 2's 0.5 (13 pruned, 14 failed): 12 without a
    # new best once 17 ends; in number order 12's 0.7 would have reset the count at the 13th end
    assert (plateau.action, plateau.after_trial, plateau.ended, plateau.finished) == (
        "done",
        17,
        17,
        16,
    )
    assert (plateau.best, plateau.best_missed, plateau.trials_saved) == (0.5, 0.4, 7)
    assert plateau.hours_saved == pytest.approx(6 * 0.5 + 2)
    assert plateau.wall_hours_saved == pytest.approx(1.0)
    assert _rule(replay, "failure_rate").stop is None and _rule(replay, "lost_rate").stop is None
    # the gates, all rules together, stop at the first checkpoint
    assert [(g.checkpoint, g.after_trial, g.action, g.rule) for g in replay.gates] == [
        (4, 3, "stop", "stop_if_best_worse_than")
    ]
    assert replay.gates_stop is not None and replay.gates_stop.trials_saved == 20

    # a lower threshold lets the gates through checkpoint 4; plateau stops them at 16, which the
    # finished count (the failed trial 14 not in it) reaches when trial 17 ends
    decision = decision.model_copy(update={"stop_if_best_worse_than": 0.3, "target": 0.8})
    replay = replay_decision(trials, _spec(), decision)
    assert _rule(replay, "stop_if_best_worse_than").stop is None
    target = _rule(replay, "target").stop
    assert (target.action, target.after_trial, target.trials_saved) == ("done", 23, 0)
    assert [(g.checkpoint, g.after_trial, g.action, g.rule) for g in replay.gates] == [
        (4, 3, "continue", "default"),
        (16, 17, "done", "plateau"),
    ]
    assert replay.gates_stop is not None and replay.gates_stop.trials_saved == 7


def test_trials_a_warm_start_carried_in_come_first_and_are_not_counted_to_checkpoints() -> None:
    carried = []
    for number in range(5):  # from an earlier study: ran before, and numbered first
        t = create_trial(
            params={"x": 0.1},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            value=0.05,
            user_attrs={"carried_from": {"study": "earlier_v1", "trial": number}},
        )
        t.number = number
        t.datetime_start, t.datetime_complete = T0 - timedelta(days=2), T0 - timedelta(days=1)
        carried.append(t)
    trials = _crafted()
    for t in trials:
        t.number += 5
    decision = DecisionSpec(checkpoints=[4, 16], stop_if_best_worse_than=0.6, plateau_trials=12)
    replay = replay_decision(trials + carried, _spec(), decision)
    plateau = _rule(replay, "plateau").stop
    assert (plateau.after_trial, plateau.ended, plateau.finished) == (22, 22, 16)
    assert [(g.checkpoint, g.after_trial) for g in replay.gates] == [(4, 8)]


def test_the_regret_bound_ends_a_converged_sweep_at_a_checkpoint() -> None:
    """Optuna's regret bound (a Gaussian process, torch) on a smooth 1-D surface sampled evenly:
    tiny once 20 trials completed; on random values it stays large."""

    def study(values: list[float]) -> list[FrozenTrial]:
        trials = []
        for i, value in enumerate(values):
            t = create_trial(
                params={"x": i / 29},
                distributions={"x": FloatDistribution(0.0, 1.0)},
                value=value,
            )
            t.number = i
            t.datetime_start, t.datetime_complete = T0, T0 + timedelta(minutes=i)
            trials.append(t)
        return trials

    decision = DecisionSpec(checkpoints=[10, 20, 25], regret_bound=0.01)
    smooth = study([1 - (i / 29 - 0.5) ** 2 for i in range(30)])
    replay = replay_decision(smooth, _spec(30), decision)
    rule = _rule(replay, "regret_bound")
    assert rule.stop is not None and (rule.stop.action, rule.stop.checkpoint) == ("done", 20)
    assert rule.stop.after_trial == 19 and rule.stop.trials_saved == 10
    assert rule.note == "at checkpoint 10: needs 20 completed trials, has 10"
    assert rule.at_checkpoints[10] is None and 0 <= rule.at_checkpoints[20] < 0.01
    assert [(g.checkpoint, g.action, g.rule) for g in replay.gates] == [
        (10, "continue", "default"),
        (20, "done", "regret_bound"),
    ]
    assert "the regret bound is " in replay.gates[1].message

    rough = study([(i * 0.618) % 1 for i in range(30)])
    replay = replay_decision(rough, _spec(30), decision)
    rule = _rule(replay, "regret_bound")
    assert rule.stop is None and replay.gates_stop is None
    assert rule.at_checkpoints[20] > 0.01 and rule.at_checkpoints[25] > 0.01


@pytest.fixture
def stored(journal_url: str) -> str:
    """The crafted trials in a journal study, added in number order (numbers kept)."""
    sweep = create_study(
        parse_spec(yaml.safe_dump(base_spec(n_trials=24))), open_storage(journal_url)
    )
    sweep.study.add_trials(_crafted())
    return journal_url


def test_hpo_replay_prints_each_rule_and_json(
    stored: str, write_spec: Any, tmp_path: Path
) -> None:
    # a whole spec works as the decision file: its decision section is read
    spec = base_spec(
        n_trials=24, decision={"checkpoints": [4, 16], "plateau_trials": 12, "target": 0.8}
    )
    path = write_spec(spec, "rules.yaml")
    result = run_hpo("replay", "test_study", "--decision", str(path), "--json", "--storage", stored)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    plateau = next(r for r in data["rules"] if r["rule"] == "plateau")
    assert (plateau["stop"]["after_trial"], plateau["stop"]["trials_saved"]) == (17, 7)
    assert data["gates_stop"]["rule"] == "plateau" and data["decision"]["plateau_trials"] == 12


def test_replay_text_and_bad_decision_files_in_one_line(
    stored: str, write_spec: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_spec({"plateau_trials": 12, "checkpoints": [16]}, "alone.yaml")
    assert main(["replay", "test_study", "--decision", str(good), "--storage", stored]) == 0
    out = capsys.readouterr().out
    assert "plateau (no new best in 12 completed trials): done after trial 17 (17 of 24" in out
    assert "saves 7 trial(s), 5 h of trial time, 10 GPU-hours, 1 h wall time" in out
    assert "checkpoint 16 (after trial 17): done (plateau)" in out

    cases = {
        "decision:\n  plateau_trial: 5\n": "decision.plateau_trial: unknown key (did you mean "
        "'plateau_trials'?); allowed in decision: checkpoints,",
        "checkpoints: [4, 30]\n": "decision.checkpoints.1: `checkpoint < n_trials` must hold, "
        "but got (checkpoint=30, n_trials=24)",
        "- 1\n": "must be a mapping with a decision: section (or the section alone), not a list",
        "regret_bound: 0.01\n": "decision.regret_bound: is judged at checkpoints, but "
        "decision.checkpoints is empty",
    }
    for text, expected in cases.items():
        bad = write_spec(text, "bad.yaml")
        code = main(["replay", "test_study", "--decision", str(bad), "--storage", stored])
        captured = capsys.readouterr()
        assert code == 1 and captured.out == ""
        assert captured.err.count("\n") == 1, captured.err
        assert captured.err.startswith(f"error: {bad}: {expected}"), captured.err
    assert len(load_study("test_study", open_storage(stored)).study.trials) == 24  # untouched


def test_importing_the_replay_does_not_import_torch() -> None:
    code = (
        "import sys, hpo_core.analysis, hpo_core.analysis.replay, hpo_core.analysis.regret;"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

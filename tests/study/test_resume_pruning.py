"""Hyperband judges a resumed trial as it would have judged the uninterrupted one.

A lost trial is re-queued as a new trial with a new number (hpo_core.worker.lost), and Optuna's
HyperbandPruner picks a trial's bracket from its number. These tests build studies where the
copy's number lands in another bracket than the original's, lose the trial at step 3, resume
the copy from step 4, and compare every pruning decision with an uninterrupted twin study.
They hold the private parts of Optuna that ResumableHyperbandPruner overrides to their contract.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpo_core.spec import parse_spec
from hpo_core.study import ResumableHyperbandPruner, build_pruner
from hpo_core.worker.lost import ATTR_CHECKPOINT, lose_trial
from tests.helpers import base_spec

HYPERBAND = {"type": "hyperband", "min_resource": 1, "max_resource": 9, "reduction_factor": 3}
STEPS = range(1, 10)


class _Numbered:
    def __init__(self, number: int) -> None:
        self.number = number


def _bracket_of(study_name: str) -> Callable[[int], int]:
    """Optuna's own bracket of a trial number in a study of that name."""
    plain = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(study_name=study_name)
    plain._try_initialization(study)
    return lambda number: plain._get_bracket_id(study, _Numbered(number))  # type: ignore[arg-type]


def _name_where(rule: Callable[[Callable[[int], int]], bool]) -> str:
    return next(name for i in itertools.count() if rule(_bracket_of(name := f"resume_{i}")))


def _study(tmp_path: Path, name: str, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    path = tmp_path / f"{uuid.uuid4().hex}.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(
        study_name=name, storage=storage, pruner=pruner, direction="maximize"
    )


def _report(trial: optuna.Trial, curve: Sequence[float], steps: Sequence[int]) -> list[bool]:
    """Report ``curve`` at ``steps``; the pruner's decision at each, until it prunes."""
    decisions = []
    for step in steps:
        trial.report(curve[step - 1], step)
        decisions.append(trial.should_prune())
        if decisions[-1]:
            break
    return decisions


def _run(study: optuna.Study, curve: Sequence[float], steps: Sequence[int] = STEPS) -> list[bool]:
    trial = study.ask()
    decisions = _report(trial, curve, steps)
    study.tell(trial, state=TrialState.PRUNED) if decisions[-1] else study.tell(trial, curve[-1])
    return decisions


def _run_lost_at_step_3(study: optuna.Study, curve: Sequence[float]) -> list[bool]:
    """Steps 1-3, a checkpoint at 3, lost; the re-queued copy resumes at step 4."""
    trial = study.ask()
    decisions = _report(trial, curve, STEPS[:3])
    assert not decisions[-1]
    trial.set_user_attr(
        ATTR_CHECKPOINT, {"epoch": 3, "artifact_id": str(uuid.uuid4()), "origin": trial.number}
    )
    assert lose_trial(study, trial._trial_id, "preempted: SIGTERM", max_retry=None)
    copy = study.ask()
    assert copy.number == trial.number + 1
    assert sorted(study._storage.get_trial(copy._trial_id).intermediate_values) == [1, 2, 3]
    resumed = _report(copy, curve, STEPS[3:])
    study.tell(copy, state=TrialState.PRUNED) if resumed[-1] else study.tell(copy, curve[-1])
    return decisions + resumed


def _pruner() -> optuna.pruners.BasePruner:
    return build_pruner(parse_spec(yaml.safe_dump(base_spec(pruner=HYPERBAND))).spec)


def test_the_spec_builds_the_resumable_hyperband() -> None:
    assert isinstance(_pruner(), ResumableHyperbandPruner)


def test_a_resumed_trial_keeps_its_bracket_and_is_pruned_where_the_original_would_be(
    tmp_path: Path,
) -> None:
    # the trial (number 4) is in bracket 2 (one rung, at step 9), its copy's number in bracket 0
    # (rungs at steps 1, 3 and 9): there, judged on lower competitors, the copy would live on
    name = _name_where(lambda b: b(4) == 2 and b(5) == 0 and [b(i) for i in range(4)].count(2) == 2)
    bracket = _bracket_of(name)
    competitors = [[0.9 if bracket(i) == 2 else 0.1] * 9 for i in range(4)]
    target = [0.5] * 9

    def decisions(lost: bool, pruner: optuna.pruners.BasePruner) -> list[bool]:
        study = _study(tmp_path, name, pruner)
        for curve in competitors:
            _run(study, curve)
        return _run_lost_at_step_3(study, target) if lost else _run(study, target)

    uninterrupted = decisions(False, _pruner())
    assert uninterrupted == [False] * 8 + [True]  # pruned at its only rung, on the 0.9s
    assert decisions(True, _pruner()) == uninterrupted
    # Optuna's own pruner judges the copy in bracket 0 and keeps it
    assert decisions(True, optuna.pruners.HyperbandPruner(1, 9, 3)) == [False] * 9


def test_a_lost_trial_and_its_copy_compete_once(tmp_path: Path) -> None:
    # trial 0 is lost at step 3 after passing two rungs of bracket 0; its copy is number 1; the
    # trials after it (2-5) are in bracket 0 too. Uninterrupted, number 1 is a trial that fails
    # at once (reports nothing), so every other trial keeps its number.
    name = _name_where(lambda b: b(0) == 0 and b(1) != 0 and all(b(i) == 0 for i in range(2, 6)))
    later = [[0.95] * 9, [0.5] * 9, [0.5] * 9]
    probe = [0.8] * 9  # promoted at rung 0 only if the 2nd best of 6 values, not the best of 5

    def probe_decisions(lost: bool) -> list[bool]:
        study = _study(tmp_path, name, _pruner())
        if lost:
            _run_lost_at_step_3(study, [0.7] * 9)
        else:
            _run(study, [0.7] * 9)
            study.tell(study.ask(), state=TrialState.FAIL)
        for curve in later:
            _run(study, curve)
        return _run(study, probe)

    assert probe_decisions(False) == [True]  # 0.8 is not the best of 0.7, 0.95, 0.5, 0.5, 0.8
    assert probe_decisions(True) == [True]


def test_optunas_private_parts_still_mean_what_the_pruner_assumes() -> None:
    """ResumableHyperbandPruner overrides these; an Optuna upgrade that changes them fails here."""
    from optuna.pruners import _successive_halving

    assert _successive_halving._completed_rung_key(2) == "completed_rung_2"
    pruner: Any = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(study_name="contract")
    pruner._try_initialization(study)
    bracket = pruner._create_bracket_study(study, 0)
    assert bracket.pruner is pruner and callable(bracket.get_trials)
    assert isinstance(pruner._get_bracket_id(study, _Numbered(0)), int)

"""Refined sweeps that warm-start from one another: refine writes the link, the report tells carried
trials from new ones, and `hpo lineage` follows the chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from hpo_core.analysis import analyze_study, build_trials_table, decide, study_lineage
from hpo_core.pipeline import report_study
from hpo_core.refine import refine_spec
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_CARRIED_FROM, fit_trial, list_studies, load_study
from hpo_core.testing.objectives import PLANTED_SPACE
from hpo_core.worker import run_worker
from tests.helpers import planted_spec, run_hpo

FIRST = planted_spec(n_trials=40)
NEW_TRIALS = 12
# the next two generations, refined by hand: each warm-starts from the one before
SECOND = {
    **FIRST,
    "study_name": "planted_v2",
    "n_trials": NEW_TRIALS,
    "param_ranges": {
        **PLANTED_SPACE,
        "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    },
    "warm_start": {"study": "planted_v1"},
}
THIRD = {
    **SECOND,
    "study_name": "planted_v3",
    "fixed": {"use_bn": True},
    "param_ranges": {
        **{k: v for k, v in PLANTED_SPACE.items() if k != "use_bn"},
        "lr": {"type": "float", "low": 2e-3, "high": 6e-3, "log": True},
        "width": {"type": "float", "low": 0.5, "high": 3.0},
    },
    "warm_start": {"study": "planted_v2"},
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """Three generations in one journal: a flat sweep and two narrower ones, 12 new trials each."""
    url = f"journal://{tmp_path_factory.mktemp('lineage') / 'studies.journal'}"
    for spec in (FIRST, SECOND, THIRD):
        run_worker(parse_spec(yaml.safe_dump(spec, sort_keys=False)), url)
    return url, ["planted_v1", "planted_v2", "planted_v3"]


def test_refine_writes_the_warm_start_and_the_next_spec_begins_with_what_fits(
    chain: tuple[str, list[str]],
) -> None:
    url, names = chain
    first = load_study(names[0], open_storage(url))
    refinement = refine_spec(analyze_study(first.study, first.spec, importance="none"))
    assert refinement.spec.warm_start is not None
    assert refinement.spec.warm_start.study == names[0]
    assert f"warm_start:\n  study: {names[0]}\n" in refinement.text
    text = refinement.text.replace(
        f"n_trials: {refinement.n_trials}\n", f"n_trials: {NEW_TRIALS}\n", 1
    )
    assert run_worker(parse_spec(text), url).complete == NEW_TRIALS  # the spec as written
    second = load_study(refinement.spec.study_name, open_storage(url))
    fitting = [
        t.number
        for t in first.study.get_trials()
        if isinstance(fit_trial(t, first.spec, second.spec), dict)
    ]
    carried = [t for t in second.study.get_trials() if ATTR_CARRIED_FROM in t.user_attrs]
    assert fitting and [t.user_attrs[ATTR_CARRIED_FROM]["number"] for t in carried] == fitting
    assert len(second.study.get_trials()) == len(fitting) + NEW_TRIALS


def test_the_lineage_of_three_generations(chain: tuple[str, list[str]]) -> None:
    url, names = chain
    lineage = study_lineage(names[1], open_storage(url))  # from the middle: both directions
    assert [g.study for g in lineage.generations] == names
    data = json.loads(json.dumps(lineage.as_dict()))  # what `hpo lineage --json` prints
    assert [g["study"] for g in data["generations"]] == names
    assert [g.generation for g in lineage.generations] == [1, 2, 3]
    assert [g.parent for g in lineage.generations] == [None, *names[:2]]
    assert [g.link for g in lineage.generations][1:] == ["warm start"] * 2
    first, second, third = lineage.generations
    assert (first.new_trials, first.carried_trials) == (40, 0)
    for g in (second, third):
        trials = load_study(g.study, open_storage(url)).study.get_trials()
        own = [t.value for t in trials if ATTR_CARRIED_FROM not in t.user_attrs]
        assert (g.new_trials, g.carried_trials) == (NEW_TRIALS, len(trials) - NEW_TRIALS)
        assert g.best == max(t.value for t in trials)
        assert g.best_new == max(own) and g.mean_new == pytest.approx(sum(own) / len(own))
        assert g.spec_hash is not None and len(g.spec_hash) == 12
    assert {c.param: c.rule for c in second.changes} == {"lr": "narrow", "n_trials": "budget"}
    assert {c.param: c.rule for c in third.changes} == {
        "use_bn": "fix",
        "lr": "narrow",
        "width": "expand",
    }


def test_the_report_and_the_decision_tell_carried_trials_from_new(
    chain: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, names = chain
    sweep = load_study(names[1], open_storage(url))
    done = report_study(sweep, tmp_path, plots=False)
    carried = sum(ATTR_CARRIED_FROM in t.user_attrs for t in sweep.study.get_trials())
    report = (tmp_path / "report.md").read_text()
    assert "## Warm start" in report
    assert f"| carried (from {names[0]}) | {carried} | {carried} | 0 |" in report
    assert f"| new | {NEW_TRIALS} | {NEW_TRIALS} | 0 |" in report
    table = pd.read_csv(tmp_path / "trials.csv")
    assert int(table["carried"].sum()) == carried
    # the rest of the analysis uses every trial: they are evidence
    assert done.analysis.summary.complete == carried + NEW_TRIALS
    assert done.analysis.summary.ended == NEW_TRIALS  # the failure rate is this sweep's own
    assert done.analysis.effect("lr").n == carried + NEW_TRIALS
    # the decision counts the budget in new trials
    trials = sweep.study.get_trials()
    decision = decide(build_trials_table(trials, sweep.spec))
    assert (decision.rule, decision.figures["finished"]) == ("budget", NEW_TRIALS)
    halfway = decide(build_trials_table(trials[: carried + NEW_TRIALS // 2], sweep.spec))
    assert halfway.action == "continue" and halfway.figures["finished"] == NEW_TRIALS // 2


def test_lineage_and_warm_start_on_the_command_line(
    chain: tuple[str, list[str]], write_spec: Any, tmp_path: Path
) -> None:
    url, names = chain
    env = {"HPO_STORAGE_URL": url}
    text = run_hpo("lineage", names[2], env=env)
    assert text.returncode == 0, text.stderr
    assert f"lineage of {names[2]}: 3 generation(s)" in text.stdout
    assert (
        f"warm start from {names[1]}: lr narrow [0.001, 0.01] log -> [0.002, 0.006]" in text.stdout
    )
    missing = run_hpo("lineage", "planted_v9", env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("error: no study named 'planted_v9'")
    # hpo sweep --warm-start-from: the flag instead of the spec's key
    spec = write_spec({**FIRST, "study_name": "planted_cli", "n_trials": 3})
    bad = run_hpo(
        "sweep", "--config", str(spec), "--no-tracking", "--warm-start-from", "nope", env=env
    )
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.startswith("error: --warm-start-from: no study named 'nope'")
    assert bad.stderr.count("\n") == 1  # one line, before the sweep's banner
    assert "planted_cli" not in {r.name for r in list_studies(open_storage(url))}  # nothing left
    swept = run_hpo(
        "sweep", "--config", str(spec), "--no-tracking", "--warm-start-from", names[0], env=env
    )
    assert swept.returncode == 0, swept.stderr
    assert "planted_cli: 3/3 finished (+40 carried)" in swept.stdout

"""The analysis commands as a user runs them, against a real study in a journal and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_STOP, load_study
from hpo_core.testing.objectives import PLANTED_SPACE
from hpo_core.worker import run_worker
from tests.helpers import run_hpo


def _planted(url: str, name: str, n: int = 40, seed: int = 0) -> None:
    spec = {
        "study_name": name,
        "n_trials": n,
        "objective": "hpo_core.testing.objectives:planted",
        "sampler": {"type": "random", "seed": seed},
        "pruner": {"type": "none"},
        "param_ranges": PLANTED_SPACE,
        "data": {"seed": seed},
        "decision": {"checkpoints": [10], "stop_if_best_worse_than": 5.0},
    }
    run_worker(parse_spec(yaml.safe_dump(spec)), url)


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":
        return f"journal://{tmp_path / 's.journal'}"
    return request.getfixturevalue("pg_url")


def test_analyze_writes_a_report_people_can_read(storage: str, tmp_path: Path) -> None:
    _planted(storage, "planted_a")
    env = {"HPO_STORAGE_URL": storage}
    result = run_hpo("analyze", "planted_a", "--out", str(tmp_path / "rep"), env=env)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "rep"
    names = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "trials.csv",
        "directionality.csv",
        "importance.csv",
        "elites.csv",
        "arms.csv",
        "flags.csv",
        "gaps.csv",
        "analysis.json",
        "next_spec.yaml",
        "rationale.csv",
        "importance.png",
        "history.png",
        "parallel.png",
        "slices.png",
    } <= names
    assert not any(n.startswith(".") for n in names)  # no temporary files left behind
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for section in (
        "## Critical findings",
        "## Directionality",
        "## Importance",
        "## Elites",
        "## Red flags",
        "## Gaps and supplementary trials",
        "## Recommended next config",
        "![history](history.png)",
    ):
        assert section in report
    data = json.loads((out / "analysis.json").read_text())
    assert data["summary"]["complete"] == 40 and data["importance"]["values"]
    assert run_hpo("validate", str(out / "next_spec.yaml")).returncode == 0
    assert "analyze planted_a: importance" in result.stderr  # progress lines


def test_decide_stores_the_decision_and_apply_sets_the_stop_flag(journal_url: str) -> None:
    _planted(journal_url, "planted_d", n=12)
    env = {"HPO_STORAGE_URL": journal_url}
    # 12 of 12 finished: done
    first = json.loads(run_hpo("decide", "planted_d", env=env).stdout)
    assert first["action"] == "done" and first["rule"] == "budget"
    sweep = load_study("planted_d", open_storage(journal_url))
    assert sweep.study.user_attrs["sweepflow.decision"]["rule"] == "budget"
    # raise the budget: the checkpoint rule (best < 5.0 at 10 trials) now says stop
    budget = run_hpo("budget", "planted_d", "30", env=env)
    assert budget.returncode == 0 and "budget 12 -> 30 trials" in budget.stdout, budget.stderr
    result = run_hpo("decide", "planted_d", "--apply", env=env)
    decision = json.loads(result.stdout)
    assert decision["action"] == "stop" and decision["rule"] == "stop_if_best_worse_than"
    flag = load_study("planted_d", open_storage(journal_url)).study.user_attrs[ATTR_STOP]
    assert flag["reason"].startswith("hpo decide --apply: stop_if_best_worse_than") and flag["by"]


def test_refine_compare_top_enqueue_stop(journal_url: str, tmp_path: Path) -> None:
    _planted(journal_url, "planted_r", n=40)
    _planted(journal_url, "planted_s", n=20, seed=1)
    env = {"HPO_STORAGE_URL": journal_url}
    refine = run_hpo("refine", "planted_r", "--out", str(tmp_path / "next.yaml"), env=env)
    assert refine.returncode == 0, refine.stderr
    lines = refine.stdout.splitlines()
    assert {line.split()[0] for line in lines[:-1]} == set(PLANTED_SPACE)  # one rule per param
    assert run_hpo("validate", str(tmp_path / "next.yaml")).returncode == 0

    compare = run_hpo("compare", "planted_r", "planted_s", "--json", env=env)
    rows = {r["figure"]: r for r in json.loads(compare.stdout)}
    assert rows["completed"]["a"] == 40 and rows["completed"]["b"] == 20
    assert rows["completed"]["change"] == "-20"

    top = run_hpo("top", "planted_r", "-k", "3", "--out", str(tmp_path / "top.yaml"), env=env)
    assert top.returncode == 0, top.stderr
    configs = yaml.safe_load((tmp_path / "top.yaml").read_text())
    assert [c["rank"] for c in configs] == [1, 2, 3]
    assert configs[0]["value"] >= configs[1]["value"] >= configs[2]["value"]
    assert set(PLANTED_SPACE) <= set(configs[0]["params"])

    # enqueue: from the top file and from --params; bad values are refused, nothing queued
    ok = run_hpo("enqueue", "planted_r", "--file", str(tmp_path / "top.yaml"), env=env)
    assert ok.returncode == 0 and "queued 0 trial(s) in planted_r (3 skipped" in ok.stdout
    for expected in ("queued 1 trial(s)", "queued 0 trial(s) in planted_r (1 skipped"):
        ok = run_hpo("enqueue", "planted_r", "--params", "lr=0.003,width=2.0,use_bn=true", env=env)
        assert ok.returncode == 0 and expected in ok.stdout, ok.stdout + ok.stderr
    for params, message in [
        ("lr=5,width=1", "lr: 5 is outside the search space; use float in [0.0001, 0.1]"),
        ("act=swish", "act: 'swish' is outside the search space; use one of"),
        ("depth=3", "depth: is not a parameter of this study"),
        ("lr", "'lr' is not NAME=VALUE"),
    ]:
        bad = run_hpo("enqueue", "planted_r", "--params", params, env=env)
        assert bad.returncode == 1 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    study = load_study("planted_r", open_storage(journal_url)).study
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"]["width"] == 2.0

    stop = run_hpo("stop", "planted_r", env=env)
    assert stop.returncode == 0, stop.stderr
    assert load_study("planted_r", open_storage(journal_url)).study.user_attrs[ATTR_STOP]["reason"] == "hpo stop"


def test_analysis_commands_on_a_missing_study_say_so(journal_url: str, tmp_path: Path) -> None:
    _planted(journal_url, "planted_x", n=12)
    env = {"HPO_STORAGE_URL": journal_url}
    for args in (
        ["analyze", "nope", "--out", str(tmp_path / "r")],
        ["decide", "nope"],
        ["refine", "nope", "--out", str(tmp_path / "n.yaml")],
    ):
        result = run_hpo(*args, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "nope" in result.stderr and "hpo studies" in result.stderr

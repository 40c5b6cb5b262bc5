"""Sweep generations in process: a first sweep records its generation link and the refined spec
its finish step wrote; the next generation is resolved from that record alone (never from an
asset event's extra), warm-started with refine's budget, up to `next.max_generations`; forged
events and tampered files are refused in one line; `hpo lineage` reads the links by family."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.analysis import ATTR_GENERATION
from hpo_core.errors import HpoError
from hpo_core.objectives import load_spec
from hpo_core.pipeline import (
    GenerationLimit,
    plan_run,
    prepare_sweep,
    refine_sweep,
    resolve_next_generation,
    sweep_asset_events,
    sweep_lineage_of,
)
from hpo_core.pipeline.generations import ATTR_NEXT_SPEC, record_next_spec
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_SPEC_HASH, load_study
from hpo_core.worker import run_worker
from tests.helpers import planted_spec

ROOT = planted_spec(
    analysis={"importance": "none"},  # refine's rules need none; it costs a second
    next={"auto": True, "max_generations": 2},
)
PARAMS = {"config": "gen.yaml", "workers": 1, "tracking": False}


def _finished(plan: Any, url: str) -> tuple[Any, dict[str, Any]]:
    """Run a planned sweep in process and record its refined spec as the finish step does."""
    prepare_sweep(plan, storage_url=url, tracking_uri=None)
    run_worker(load_spec(plan.config), url)
    sweep = load_study(plan.study_name, open_storage(url))
    out = Path(plan.run_dir) / "report" / "next_spec.yaml"
    out.parent.mkdir(parents=True)
    refine_sweep(sweep, out)
    record = record_next_spec(sweep, out)
    assert record is not None
    return sweep, record


@pytest.fixture
def first(
    tmp_path: Path, journal_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Any, dict[str, Any]]:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "gen.yaml").write_text(yaml.safe_dump(ROOT))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    plan = plan_run(PARAMS, run_id="r1", storage_url=journal_url)
    sweep, record = _finished(plan, journal_url)
    return journal_url, sweep, record


def _event(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The extra the finish step posts for a recorded next spec (changed as a forger would)."""
    summary = {
        "study": "planted_v1",
        "best_value": 0.5,
        "generation": {"number": 1, "family": "planted", "root": "planted_v1", "next": record},
    }
    (event,) = sweep_asset_events(summary)
    assert event.asset == "sweepflow.next_spec.planted_v1"
    return {**event.extra, **changes}


def test_the_next_generation_runs_the_recorded_spec_up_to_the_limit(
    first: tuple[str, Any, dict[str, Any]], tmp_path: Path
) -> None:
    url, sweep, record = first
    home = tmp_path / "hpo_home"
    assert sweep.study.user_attrs[ATTR_GENERATION] == {
        "number": 1,
        "parent": None,
        "parent_spec_hash": None,
        "root": "planted_v1",
    }
    assert record["path"] == "runs/planted_v1/r1/report/next_spec.yaml"
    assert record["generation"] == 2 and record["study"] == "planted_v2_refined"

    found = resolve_next_generation(_event(record), config="gen.yaml", storage_url=url)
    assert found.path == str(home / record["path"]) and found.generation == 2
    assert found.spec_hash == record["spec_hash"] and found.source == "planted_v1"
    plan = plan_run(PARAMS, run_id="r2", storage_url=url, next_spec=found.path)
    refined = load_spec(found.path).spec
    assert plan.study_name == "planted_v2_refined" and plan.n_trials == refined.n_trials
    with pytest.raises(HpoError, match=r"^params\.n_trials: a generation runs the budget"):
        plan_run({**PARAMS, "n_trials": 5}, run_id="r2", storage_url=url, next_spec=found.path)
    prepare_sweep(plan, storage_url=url, tracking_uri=None)
    second = load_study("planted_v2_refined", open_storage(url))
    assert second.study.user_attrs[ATTR_GENERATION] == {
        "number": 2,
        "parent": "planted_v1",
        "parent_spec_hash": sweep.study.user_attrs[ATTR_SPEC_HASH],
        "root": "planted_v1",
    }
    assert second.study.user_attrs["sweepflow.warm_start"]["carried"] > 0  # warm-started

    # generation 2 refines a third: past max_generations 2, nothing starts
    out = Path(plan.run_dir) / "report" / "next_spec.yaml"
    out.parent.mkdir(parents=True)
    shutil.copy(found.path, out)
    third = record_next_spec(second, out)
    assert third is not None and third["generation"] == 3
    with pytest.raises(GenerationLimit, match=r"^gen\.yaml: next\.max_generations: 2 sweeps"):
        resolve_next_generation(
            {**_event(third), "study": "planted_v2_refined"}, config="gen.yaml", storage_url=url
        )

    # the lineage by family name: the recorded links, figures per generation
    lineage, text = sweep_lineage_of("planted", url)
    gens = lineage.generations
    assert [(g.generation, g.study, g.parent) for g in gens] == [
        (1, "planted_v1", None),
        (2, "planted_v2_refined", "planted_v1"),
    ]
    assert gens[1].link == "refined, warm start" and gens[1].changes
    assert gens[0].trial_hours is not None and gens[0].trial_hours > 0
    assert gens[0].mean_new is not None and gens[0].gpu_hours is not None  # 0 GPUs on the CPU
    assert "trial-h" in text.splitlines()[1] and "GPU-h" in text.splitlines()[1]


def test_a_forged_event_or_a_changed_file_is_refused(
    first: tuple[str, Any, dict[str, Any]], tmp_path: Path
) -> None:
    url, sweep, record = first
    home = tmp_path / "hpo_home"
    elsewhere = home / "runs" / "other" / "next_spec.yaml"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text((home / record["path"]).read_text())
    forged = {
        "a path of the forger's": (
            _event(record, next_spec="runs/other/next_spec.yaml"),
            "asset event: extra.next_spec: differs from what study 'planted_v1'",
        ),
        "another hash": (
            _event(record, spec_hash="0" * 64),
            "asset event: extra.spec_hash: differs from what study 'planted_v1'",
        ),
        "no such study": (
            _event(record, study="planted_v9"),
            "asset event: extra.study: no study 'planted_v9'; refused",
        ),
        "not a study name": (
            _event(record, study="../planted_v1"),
            "asset event: extra.study: names no study ('../planted_v1')",
        ),
        "not a mapping": ("planted_v1", "asset event: extra.study: names no study (None)"),
    }
    for case, (extra, line) in forged.items():
        with pytest.raises(HpoError) as refused:
            resolve_next_generation(extra, config="gen.yaml", storage_url=url)
        assert str(refused.value).startswith(line), (case, str(refused.value))
        assert "\n" not in str(refused.value)

    # a study outside the config's chain, even with a record of its own
    other = load_study("planted_v1", open_storage(url))
    other.study.set_user_attr(ATTR_GENERATION, {"number": 1, "root": "someone_else_v1"})
    with pytest.raises(HpoError, match=r"^asset event: study 'planted_v1' is not in the chain"):
        resolve_next_generation(_event(record), config="gen.yaml", storage_url=url)
    other.study.set_user_attr(ATTR_GENERATION, {"number": 1, "root": "planted_v1"})

    # the record itself pointing out of the study's run folders (the event agreeing with it)
    moved = {**record, "path": "runs/other/next_spec.yaml"}
    sweep.study.set_user_attr(ATTR_NEXT_SPEC, moved)
    with pytest.raises(HpoError, match=r"^next spec 'runs/other/next_spec.yaml': not a file in"):
        resolve_next_generation(_event(moved), config="gen.yaml", storage_url=url)
    (home / "runs" / "planted_v1" / "link.yaml").symlink_to(elsewhere)
    linked = {**record, "path": "runs/planted_v1/link.yaml"}
    sweep.study.set_user_attr(ATTR_NEXT_SPEC, linked)
    with pytest.raises(HpoError, match=r"^next spec 'runs/planted_v1/link.yaml': not a file in"):
        resolve_next_generation(_event(linked), config="gen.yaml", storage_url=url)
    sweep.study.set_user_attr(ATTR_NEXT_SPEC, record)

    # the file changed after refine wrote it
    path = home / record["path"]
    path.write_text(path.read_text().replace("n_trials: ", "n_trials: 1", 1))
    with pytest.raises(HpoError, match=r"next_spec\.yaml: changed since refine wrote it"):
        resolve_next_generation(_event(record), config="gen.yaml", storage_url=url)

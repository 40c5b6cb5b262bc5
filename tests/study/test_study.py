"""Studies are created once, carry their spec, and refuse a different search space."""

from __future__ import annotations

import pytest
import yaml

from hpo_core.errors import StudyError
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import (
    ATTR_N_TRIALS,
    create_study,
    list_studies,
    load_study,
    set_budget,
    study_progress,
)
from tests.helpers import base_spec


@pytest.fixture(params=["journal", "postgres"])
def storage_url(request: pytest.FixtureRequest, journal_url: str) -> str:
    if request.param == "journal":
        return journal_url
    return str(request.getfixturevalue("pg_url"))


def test_create_is_idempotent_and_spec_is_recovered_from_storage(storage_url: str) -> None:
    text = "# the user's comment\n" + yaml.safe_dump(base_spec())
    loaded = parse_spec(text)
    handle = open_storage(storage_url)
    first = create_study(loaded, handle)
    second = create_study(parse_spec(text), handle)
    assert first.study_id == second.study_id
    recovered = load_study("test_study", open_storage(storage_url))
    assert recovered.loaded.text == text  # exactly as written, comments included
    assert recovered.loaded.hash == loaded.hash
    assert [r.name for r in list_studies(handle)] == ["test_study"]
    # optuna-dashboard labels the objective with the spec's metric, not "Objective 0"
    assert recovered.study.metric_names == [loaded.spec.metric]


def test_different_search_space_is_refused(storage_url: str) -> None:
    handle = open_storage(storage_url)
    create_study(parse_spec(yaml.safe_dump(base_spec())), handle)
    changed = base_spec()
    changed["param_ranges"]["x"]["high"] = 2.0
    with pytest.raises(StudyError) as info:
        create_study(parse_spec(yaml.safe_dump(changed)), handle)
    assert "created from a different spec" in str(info.value)
    assert "param_ranges.x" in str(info.value)
    assert "hpo worker --study test_study" in str(info.value)


def test_heartbeat_settings_are_fixed_at_creation(storage_url: str) -> None:
    handle = open_storage(storage_url)
    create_study(parse_spec(yaml.safe_dump(base_spec(worker={"heartbeat_interval": 5}))), handle)
    other = base_spec(worker={"heartbeat_interval": 5, "grace_period": 6})
    with pytest.raises(StudyError, match=r"worker.grace_period are fixed when the study is created"):
        create_study(parse_spec(yaml.safe_dump(other)), handle)


def test_a_joining_file_never_rewrites_the_stored_spec(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The budget and the sections read after the sweep may differ in a joining file: the study
    keeps its stored spec and budget, and the log says which fields were not taken."""
    handle = open_storage(storage_url)
    text = yaml.safe_dump(base_spec(n_trials=10))
    create_study(parse_spec(text), handle)
    joining = base_spec(n_trials=25, analysis={"elite_quantile": 0.2}, description="edited")
    sweep = create_study(parse_spec(yaml.safe_dump(joining)), handle)
    assert sweep.loaded.text == text and sweep.spec.n_trials == 10
    stored = load_study("test_study", handle)
    assert stored.loaded.text == text
    assert stored.study.user_attrs[ATTR_N_TRIALS] == 10
    logged = caplog.text
    assert "n_trials 25 differs from study test_study's budget of 10" in logged
    assert "hpo budget test_study 25" in logged
    assert "analysis.elite_quantile, description differ" in logged


def test_budget_changes_through_set_budget_only(storage_url: str) -> None:
    handle = open_storage(storage_url)
    sweep = create_study(parse_spec(yaml.safe_dump(base_spec(n_trials=10))), handle)
    assert set_budget(sweep, 25) == (10, 25)
    assert study_progress(load_study("test_study", handle)).n_trials == 25
    for _ in range(3):
        sweep.study.tell(sweep.study.ask(), 0.5)
    assert set_budget(sweep, 3) == (25, 3)  # down to what is finished, no further
    with pytest.raises(StudyError, match=r"has 3 finished trials already.*asked 2"):
        set_budget(sweep, 2)


def test_unknown_study_suggests_close_name(journal_url: str) -> None:
    handle = open_storage(journal_url)
    create_study(parse_spec(yaml.safe_dump(base_spec())), handle)
    with pytest.raises(
        StudyError, match=r"no study named 'test_studdy'.*did you mean 'test_study'"
    ):
        load_study("test_studdy", handle)

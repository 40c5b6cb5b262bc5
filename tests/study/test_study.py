"""Studies are created once, carry their spec, and refuse a different search space."""

from __future__ import annotations

import pytest
import yaml

from hpo_core.errors import StudyError
from hpo_core.spec import parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import ATTR_N_TRIALS, create_study, list_studies, load_study, study_progress
from tests.conftest import base_spec


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


def test_different_search_space_is_refused(storage_url: str) -> None:
    handle = open_storage(storage_url)
    create_study(parse_spec(yaml.safe_dump(base_spec())), handle)
    changed = base_spec()
    changed["param_ranges"]["x"]["high"] = 2.0
    with pytest.raises(StudyError) as info:
        create_study(parse_spec(yaml.safe_dump(changed)), handle)
    assert "already exists" in str(info.value)
    assert "param_ranges.x" in str(info.value)


def test_raising_the_budget_extends_the_study(storage_url: str) -> None:
    handle = open_storage(storage_url)
    create_study(parse_spec(yaml.safe_dump(base_spec(n_trials=10))), handle)
    sweep = create_study(parse_spec(yaml.safe_dump(base_spec(n_trials=25))), handle)
    assert sweep.study.user_attrs[ATTR_N_TRIALS] == 25
    assert study_progress(sweep).n_trials == 25


def test_unknown_study_suggests_close_name(journal_url: str) -> None:
    handle = open_storage(journal_url)
    create_study(parse_spec(yaml.safe_dump(base_spec())), handle)
    with pytest.raises(
        StudyError, match=r"no study named 'test_studdy'.*did you mean 'test_study'"
    ):
        load_study("test_studdy", handle)

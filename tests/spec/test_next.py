"""The spec's `next:` (generations): off by default, bounded, each bad value one line naming the
field and the fix; joining a study whose spec differs only in `next:` is allowed (the workers
never read it)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hpo_core.errors import SpecError
from hpo_core.objectives import parse_spec
from tests.helpers import base_spec

BAD = [
    ("auto", "next: must be a mapping such as `next: {auto: true, max_generations: 3}`"),
    ({"auto": True, "max_generations": 1}, "next.max_generations: must be from 2 (this sweep"),
    ({"auto": True, "max_generations": 21}, "next.max_generations: must be from 2 (this sweep"),
    ({"auto": "sometimes"}, "next.auto: "),
    ({"auto": True, "after": 3}, "next.after: unknown key; allowed in next: auto, max_generations"),
]


@pytest.mark.parametrize(("value", "error"), BAD)
def test_a_bad_next_is_one_line_naming_the_field(value: Any, error: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(base_spec(next=value)))
    (issue,) = [str(i) for i in info.value.issues]
    assert issue.startswith(error) and "\n" not in issue, issue


def test_off_by_default_and_three_sweeps_when_on() -> None:
    assert parse_spec(yaml.safe_dump(base_spec())).spec.next.auto is False
    spec = parse_spec(yaml.safe_dump(base_spec(next={"auto": True}))).spec
    assert spec.next.auto and spec.next.max_generations == 3


def test_a_study_is_joined_by_a_file_that_changes_only_next(journal_url: str) -> None:
    from hpo_core.storage import open_storage
    from hpo_core.study import create_study

    handle = open_storage(journal_url)
    create_study(parse_spec(yaml.safe_dump(base_spec())), handle)
    chained = parse_spec(yaml.safe_dump(base_spec(next={"auto": True})))
    assert create_study(chained, handle).spec.next.auto is False  # the stored spec runs

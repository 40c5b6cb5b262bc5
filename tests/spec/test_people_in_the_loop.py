"""The spec's people-in-the-loop settings (``champions.approval``, ``decision.override``): off by
default; each bad value one line naming the field and the fix; an extension always bounded."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hpo_core.errors import SpecError
from hpo_core.objectives import parse_spec
from tests.helpers import base_spec

GATED = {"checkpoints": [4]}
BAD = [
    (
        {"decision": {**GATED, "override": {"extend_trials": 5}}},
        "decision.override.max_n_trials: required with extend_trials: an extension must have a "
        "ceiling",
    ),
    (
        {"decision": {**GATED, "override": {"extend_trials": 5, "max_n_trials": 12}}},
        "decision.override.max_n_trials: `max_n_trials >= n_trials + extend_trials` must hold, "
        "but got (max_n_trials=12, n_trials=10, extend_trials=5)",
    ),
    ({"decision": {"override": {}}}, "decision.override: is asked at checkpoints, but"),
    (
        {"decision": {**GATED, "override": {"default": "extend"}}},
        "decision.override.default: must be one of 'automatic', 'continue' or 'stop'",
    ),
    (
        {"champions": {"approval": {"timeout": "tomorrow"}}},
        "champions.approval.timeout: must be a duration from 1s to 7d such as 90s, 30m, 24h or 7d",
    ),
    ({"champions": {"approval": {"timeout": "8d"}}}, "champions.approval.timeout: must be a"),
    ({"champions": {"approval": {"timeout": 0.5}}}, "champions.approval.timeout: must be a"),
    ({"champions": {"approval": {"default": "maybe"}}}, "champions.approval.default: must be one"),
]


@pytest.mark.parametrize(("change", "error"), BAD)
def test_a_bad_setting_is_one_line_naming_the_field(change: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(base_spec(**change)))
    (issue,) = [str(i) for i in info.value.issues]
    assert issue.startswith(error) and "\n" not in issue, issue


def test_off_by_default_and_durations_in_words() -> None:
    spec = parse_spec(yaml.safe_dump(base_spec())).spec
    assert spec.champions.approval.required is False and spec.decision.override is None
    spec = parse_spec(
        yaml.safe_dump(
            base_spec(
                champions={"approval": {"required": True, "timeout": "24h"}},
                decision={
                    **GATED,
                    "override": {"timeout": "90s", "extend_trials": 5, "max_n_trials": 15},
                },
            )
        )
    ).spec
    assert (spec.champions.approval.timeout, spec.champions.approval.default) == (86400, "reject")
    assert spec.decision.override is not None and spec.decision.override.timeout == 90
    assert (
        parse_spec(
            yaml.safe_dump(base_spec(champions={"approval": {"timeout": "30m"}}))
        ).spec.champions.approval.timeout
        == 1800
    )

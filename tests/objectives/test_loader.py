"""The spec loader of the entry points: the spec checks the form of ``objective:``, the registry
its name, and every door a user takes says the same line about an unknown one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo_core.cli import main
from hpo_core.errors import SpecError
from hpo_core.objectives import check_objective_spec, parse_spec, require_objective_spec
from hpo_core.spec import parse_spec as parse_spec_form
from tests.helpers import base_spec

UNKNOWN = (
    "objective: unknown objective 'synthetik' (did you mean 'synthetic'?); use one of "
    "arc_classifier, binary_classifier, noop, sleep, synthetic or `package.module:function`"
)


def test_the_spec_checks_the_form_the_loader_the_name_with_every_other_problem() -> None:
    text = yaml.safe_dump(base_spec(objective="synthetik", n_trials=0))
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert [str(i) for i in info.value.issues] == [
        "n_trials: Input should be greater than or equal to 1, but got 0",
        UNKNOWN,
    ]
    # hpo_core.spec alone (a layer below the registry) knows the form only ...
    spec = parse_spec_form(yaml.safe_dump(base_spec(objective="synthetik"))).spec
    with pytest.raises(SpecError, match=r"is not of the form `package\.module:function`"):
        parse_spec_form(yaml.safe_dump(base_spec(objective="my.module:")))
    # ... and a spec read that way is still refused where a sweep starts
    assert [str(i) for i in check_objective_spec(spec)] == [UNKNOWN]
    with pytest.raises(SpecError) as refused:
        require_objective_spec(spec, source="s.yaml")
    assert str(refused.value) == f"s.yaml: {UNKNOWN}"


def test_every_entry_point_refuses_an_unknown_objective_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo_core.pipeline import plan_run

    configs = tmp_path / "configs"
    configs.mkdir()
    path = configs / "s.yaml"
    path.write_text(yaml.safe_dump(base_spec(objective="synthetik")))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HPO_STORAGE_URL", f"journal:///{tmp_path / 'never.log'}")
    line = f"{path}: {UNKNOWN}"
    doors = {
        "validate": ["validate", str(path)],
        "check": ["check", str(path), "--no-tracking", "--no-smoke"],
        "worker": ["worker", "--config", str(path)],
        "sweep": ["sweep", "--config", str(path), "--no-tracking"],
        "smoke": ["smoke", str(path)],
    }
    for door, argv in doors.items():
        assert main(argv) == 1, door
        first = capsys.readouterr().err.splitlines()[0]
        expected = f"error: check spec failed: {line}" if door == "check" else f"error: {line}"
        assert first == expected, door
    plan = plan_run({"config": "s.yaml"}, run_id="manual__1", home=tmp_path / "home")
    assert plan.spec_error == line  # the checklist's `spec` item says it, and the run stops
    assert not (tmp_path / "never.log").exists() and not (tmp_path / "home").exists()

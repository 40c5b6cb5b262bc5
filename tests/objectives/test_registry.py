from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpo_core.errors import HpoError, ObjectiveError, SpecError
from hpo_core.objectives import (
    ENV_ALLOWED_OBJECTIVES,
    TrialContext,
    allowed_objectives,
    check_objective_allowed,
    check_objective_spec,
    is_available,
    require_objective_spec,
    resolve_champion_trainer,
    resolve_objective,
)
from hpo_core.objectives.synthetic import score
from hpo_core.spec import parse_spec
from tests.helpers import base_spec


def test_registered_names_resolve_without_importing_torch() -> None:
    assert resolve_objective("synthetic").__name__ == "objective"
    assert is_available("noop")


def test_registered_but_absent_objective_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_core.objectives import registry

    ghost = registry.RegisteredObjective("ghost", "ghost_pkg.models:objective", "not installed")
    monkeypatch.setitem(registry._REGISTRY, "ghost", ghost)
    assert not is_available("ghost")
    assert is_available("arc_classifier")
    with pytest.raises(ObjectiveError, match="registered but not available in this installation"):
        resolve_objective("ghost")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere_pkg.mod:fn", "cannot import 'nowhere_pkg.mod'"),
        ("hpo_core.objectives.synthetic:missing", "has no function 'missing'"),
        ("unknown_name", "unknown objective 'unknown_name'"),
    ],
)
def test_user_objective_errors_name_the_fix(target: str, message: str) -> None:
    with pytest.raises(ObjectiveError, match=message):
        resolve_objective(target)


def test_synthetic_surface_is_deterministic_and_sensitive() -> None:
    spec = parse_spec(yaml.safe_dump(base_spec())).spec

    def value(x: float) -> float:
        ctx = TrialContext(trial=None, params={"x": x, "encoder_type": "cnn"}, spec=spec)  # type: ignore[arg-type]
        return score(ctx)

    assert value(0.3) == value(0.3)
    assert value(0.0) != value(1.0)
    assert all(0.1 <= value(x / 10) <= 0.9 for x in range(11))


# --------------------------------------------------------------------------- the allowlist

PROBE = "allow_probe_pkg"  # a user package whose import leaves a mark: importing is running it


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package on sys.path that writes ``imported`` beside itself when it is imported."""
    package = tmp_path / PROBE
    package.mkdir()
    mark = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    (package / "objectives.py").write_text("def objective(ctx):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield mark
    for name in [m for m in sys.modules if m.startswith(PROBE)]:
        del sys.modules[name]


def test_unset_or_empty_allows_every_objective(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ALLOWED_OBJECTIVES, raising=False)
    assert allowed_objectives() is None
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, " , ")
    assert allowed_objectives() is None
    check_objective_allowed("anything.at:all")


def test_the_list_takes_names_and_targets_and_refuses_a_typo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, "arc_classifier, my_pkg.obj:run")
    assert allowed_objectives() == {"arc_classifier", "my_pkg.obj:run"}
    check_objective_allowed("my_pkg.obj:run")
    # a registered name allows its own targets: the objective and its champion trainer
    check_objective_allowed("hpo_core.objectives.arc_classifier:objective")
    check_objective_allowed("hpo_core.objectives.arc_classifier:train_config", field="trainer")
    with pytest.raises(ObjectiveError) as info:
        check_objective_allowed("synthetic")
    assert str(info.value) == (
        "objective: 'synthetic' is not allowed in this deployment "
        "(HPO_ALLOWED_OBJECTIVES=arc_classifier,my_pkg.obj:run); "
        "allowed: arc_classifier, my_pkg.obj:run"
    )
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, "arc_clasifier")
    with pytest.raises(ObjectiveError, match="'arc_clasifier' is neither a registered objective"):
        check_objective_allowed("arc_classifier")


def test_a_list_can_come_from_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Airflow plugin does with a connection's extra."""
    monkeypatch.delenv(ENV_ALLOWED_OBJECTIVES, raising=False)
    with pytest.raises(ObjectiveError, match=r"\(connection hpo extra=noop\); allowed: noop$"):
        check_objective_allowed("synthetic", allowed="noop", origin="connection hpo extra")


def test_a_user_objective_not_allowed_is_never_imported(
    probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{PROBE}.objectives:objective"
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, "synthetic")
    for call in (resolve_objective, is_available):
        with pytest.raises(ObjectiveError, match=f"objective: '{target}' is not allowed"):
            call(target)
    spec = parse_spec(yaml.safe_dump(base_spec(objective=target))).spec
    with pytest.raises(ObjectiveError, match=f"^spec.yaml: objective: '{target}' is not allowed"):
        require_objective_spec(spec, source="spec.yaml")  # not a SpecError: plan fails on it
    assert [str(i) for i in check_objective_spec(spec)] == [
        f"objective: '{target}' is not allowed in this deployment "
        "(HPO_ALLOWED_OBJECTIVES=synthetic); allowed: synthetic"
    ]
    assert not probe.exists() and PROBE not in sys.modules
    # allowed, it is imported: the probe can tell
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, f"synthetic,{target}")
    assert resolve_objective(target).__name__ == "objective"
    assert probe.exists()


def test_a_champion_trainer_is_held_to_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, "synthetic")
    spec = base_spec(champions={"trainer": f"{PROBE}.objectives:objective"})
    loaded = parse_spec(yaml.safe_dump(spec)).spec
    (issue,) = check_objective_spec(loaded)
    assert (
        issue.path == "champions.trainer" and "is not allowed in this deployment" in issue.message
    )
    with pytest.raises(ObjectiveError, match=r"^champions\.trainer: "):
        resolve_champion_trainer("synthetic", f"{PROBE}.objectives:objective")


def test_the_dag_plan_fails_on_an_objective_not_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo_core.pipeline import plan_run

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "s.yaml").write_text(yaml.safe_dump(base_spec()))
    monkeypatch.setenv("SWEEPFLOW_CONFIG_DIR", str(configs))
    monkeypatch.setenv(ENV_ALLOWED_OBJECTIVES, "arc_classifier")
    with pytest.raises(HpoError) as info:
        plan_run({"config": "s.yaml"}, run_id="manual__1", home=tmp_path / "home")
    assert not isinstance(info.value, SpecError)  # the plan fails; it is not a checklist item
    assert str(info.value) == (
        f"{configs / 's.yaml'}: objective: 'synthetic' is not allowed in this deployment "
        "(HPO_ALLOWED_OBJECTIVES=arc_classifier); allowed: arc_classifier"
    )
    monkeypatch.delenv(ENV_ALLOWED_OBJECTIVES)
    assert (
        plan_run({"config": "s.yaml"}, run_id="manual__1", home=tmp_path / "home").spec_error
        is None
    )


def test_hpo_data_runs_the_data_command_the_registry_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hpo data` has no family of its own: each registered objective names its data command,
    and an objective without one is refused, naming those that have one."""
    from hpo_core.cli import main
    from hpo_core.objectives import registry

    def spec(objective: str, **data: object) -> str:
        path = tmp_path / f"{objective}.yaml"
        path.write_text(yaml.safe_dump(base_spec(objective=objective, data=data)))
        return str(path)

    assert main(["data", spec("synthetic")]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'synthetic.yaml'}: objective 'synthetic' reads no data files; "
        "`hpo data` reads arc_classifier and binary_classifier specs\n"
    )
    assert main(["data", spec("arc_classifier"), "--generate"]) == 1
    assert "only binary_classifier specs have a synthetic data set" in capsys.readouterr().err
    table = tmp_path / "buy.parquet"
    binary = spec("binary_classifier", path=str(table), window=4)
    assert main(["data", binary, "--generate", "--rows", "2000", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert err == f"wrote 2,000 rows to {table}\n" and table.is_file()
    assert out.startswith(("pass: 2000 rows from ", "warn: ")), out
    assert main(["data", binary, "--generate"]) == 1  # never over a file
    assert "exists already" in capsys.readouterr().err
    # the registry, not the command, knows which objective reads what
    noop = registry.RegisteredObjective(
        "noop",
        "hpo_core.objectives.synthetic:noop",
        "test",
        data_command="hpo_core.objectives.binary_classifier:describe_data",
    )
    monkeypatch.setitem(registry._REGISTRY, "noop", noop)
    assert main(["data", spec("noop", path=str(table), window=4), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2000

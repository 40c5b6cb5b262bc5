from __future__ import annotations

import pytest
import yaml

from hpo_core.errors import ObjectiveError
from hpo_core.objectives import TrialContext, is_available, resolve_objective
from hpo_core.objectives.synthetic import score
from hpo_core.spec import parse_spec
from tests.conftest import base_spec


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

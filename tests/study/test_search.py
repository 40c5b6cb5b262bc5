"""Samplers and pruners a spec names: Optuna's by name, a class by path, a vendored OptunaHub
package; each checked (allowlist, import, subclass, arguments) with one line naming the field."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import optunahub
import pytest
import yaml

from hpo_core.checks import check_dependencies
from hpo_core.cli import main
from hpo_core.errors import SpecError
from hpo_core.spec import parse_spec
from hpo_core.study import (
    ENV_ALLOWED_SEARCH_MODULES,
    ENV_OPTUNAHUB_DIR,
    build_pruner,
    build_sampler,
    suggest_params,
)
from tests.helpers import base_spec
from tests.study.search_classes import JitterSampler, StepPruner

OURS = "tests.study.search_classes"


def _spec(**sections: Any) -> Any:
    return parse_spec(yaml.safe_dump(base_spec(**sections))).spec


def _validate(spec: dict[str, Any], write_spec: Callable[..., Path], capsys: Any) -> list[str]:
    """`hpo validate` in process: exit 1 and the error lines it printed."""
    path = write_spec(spec)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if "problem(s)" not in line]


def test_a_class_by_path_is_built_with_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, f"pkg_elsewhere, {OURS}")
    spec = _spec(
        sampler={"type": f"{OURS}:JitterSampler", "seed": 5, "options": {"jitter": 0.5}},
        pruner={"type": f"{OURS}:StepPruner", "options": {"step": 2}},
    )
    sampler, pruner = build_sampler(spec), build_pruner(spec)
    assert isinstance(sampler._base, JitterSampler) and sampler._base.jitter == 0.5
    assert isinstance(pruner, StepPruner) and pruner.step == 2
    study = optuna.create_study(sampler=sampler, pruner=pruner, direction="maximize")
    trial = study.ask()
    suggest_params(trial, spec)
    trial.report(0.1, 1)
    assert not trial.should_prune()
    trial.report(0.1, 2)
    assert trial.should_prune()


def test_optunas_own_classes_need_no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ALLOWED_SEARCH_MODULES, raising=False)
    spec = _spec(
        sampler={"type": "optuna.samplers:BruteForceSampler", "seed": 1},
        pruner={"type": "optuna.pruners:PercentilePruner", "options": {"percentile": 25.0}},
    )
    assert isinstance(build_sampler(spec)._base, optuna.samplers.BruteForceSampler)
    assert isinstance(build_pruner(spec), optuna.pruners.PercentilePruner)


@pytest.mark.parametrize(
    ("section", "allowed", "field", "says"),
    [
        (
            {"sampler": {"type": f"{OURS}:JitterSampler"}},
            "",
            "sampler.type",
            f"'{OURS}' is not allowed in this deployment (none allowed)",
        ),
        (
            {"pruner": {"type": f"{OURS}:StepPruner"}},
            "tests.study.search_class, tests.study.search_classes.sub",  # not a module above
            "pruner.type",
            f"'{OURS}' is not allowed in this deployment ({ENV_ALLOWED_SEARCH_MODULES}=",
        ),
        (
            {"sampler": {"type": "tests.study.no_such_module:Sampler"}},
            "tests.study",
            "sampler.type",
            "cannot import 'tests.study.no_such_module' (tests.study.no_such_module is missing)",
        ),
        (
            {"sampler": {"type": f"{OURS}:NotASampler"}},
            OURS,
            "sampler.type",
            f"{OURS}:NotASampler is not a subclass of optuna's BaseSampler (a class of another",
        ),
        (
            {"pruner": {"type": f"{OURS}:JitterSampler"}},
            OURS,
            "pruner.type",
            "is not a subclass of optuna's BasePruner",
        ),
        (
            {"sampler": {"type": f"{OURS}:JitterSampler", "options": {"jiter": 1}}},
            OURS,
            "sampler.options.jiter",
            "JitterSampler takes no argument 'jiter' (did you mean 'jitter'? it takes seed, "
            "jitter); remove 'jiter'",
        ),
        (
            {"pruner": {"type": f"{OURS}:StepPruner", "options": {"steps": 1}}},
            OURS,
            "pruner.options.steps",
            "StepPruner takes no argument 'steps'",
        ),
        (
            {"sampler": {"type": "cmaes", "options": {"sigma": 0.3}}},
            "",
            "sampler.options.sigma",
            "CmaEsSampler takes no argument 'sigma' (did you mean 'sigma0'?",
        ),
        (
            {"pruner": {"type": "optuna.pruners:PercentilePruner", "seed": 1}},
            "",
            "pruner.seed",
            "unknown key",
        ),
    ],
    ids=[
        "not-allowlisted",
        "prefix-is-not-a-string-prefix",
        "not-importable",
        "not-a-sampler",
        "not-a-pruner",
        "unknown-kwarg",
        "unknown-pruner-kwarg",
        "unknown-builtin-kwarg",
        "pruner-has-no-seed",
    ],
)
def test_bad_sampler_or_pruner_is_one_line_through_validate(
    section: dict[str, Any],
    allowed: str,
    field: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    write_spec: Callable[..., Path],
    capsys: Any,
) -> None:
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, allowed)
    lines = _validate(base_spec(**section), write_spec, capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and f" {field}: " in lines[0], lines
    assert says in lines[0], lines


def test_a_custom_class_gets_only_seed_and_options(
    monkeypatch: pytest.MonkeyPatch, write_spec: Callable[..., Path], capsys: Any
) -> None:
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, OURS)
    sampler = {"type": f"{OURS}:JitterSampler", "multivariate": False}
    (line,) = _validate(base_spec(sampler=sampler), write_spec, capsys)
    assert "sampler.multivariate: configures Optuna's built-in samplers, not " in line
    pruner = {"type": f"{OURS}:StepPruner", "options": {"min_resource": 2}}
    (line,) = _validate(base_spec(pruner=pruner), write_spec, capsys)
    assert "pruner.options.min_resource: is a field of pruner" in line


def test_a_class_is_built_only_with_arguments_it_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked where it is built too: a stored spec is not validated again."""
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, "")
    with pytest.raises(
        SpecError, match=r"sampler\.seed: PartialFixedSampler takes no argument 'seed'"
    ):
        build_sampler(_spec(sampler={"type": "optuna.samplers:PartialFixedSampler", "seed": 3}))
    with pytest.raises(SpecError, match=r"sampler\.options: GridSampler: missing a required"):
        build_sampler(_spec(sampler={"type": "optuna.samplers:GridSampler"}))


def test_a_bad_allowlist_entry_is_an_error(
    monkeypatch: pytest.MonkeyPatch, write_spec: Callable[..., Path], capsys: Any
) -> None:
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, "my-pkg/samplers")
    (line,) = _validate(base_spec(sampler={"type": f"{OURS}:X"}), write_spec, capsys)
    assert f"{ENV_ALLOWED_SEARCH_MODULES}: 'my-pkg/samplers' is neither a module prefix" in line


def test_a_missing_optional_package_is_named(
    monkeypatch: pytest.MonkeyPatch, write_spec: Callable[..., Path]
) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)  # as if not installed
    spec = _spec(sampler={"type": "cmaes", "seed": 1})
    with pytest.raises(
        SpecError,
        match=r"sampler\.type: cmaes needs the cmaes package.*"
        r"sweepflow\[cmaes\]",
    ):
        build_sampler(spec)
    result = check_dependencies(write_spec(base_spec(sampler={"type": "cmaes"})), tracking=False)
    assert result.status == "fail"
    assert "not importable: cmaes" in result.reason and "sweepflow[cmaes]" in result.reason


HUB_PACKAGE = """
import optuna


class HubSampler(optuna.samplers.RandomSampler):
    def __init__(self, *, seed=None, temperature=1.0):
        super().__init__(seed=seed)
        self.temperature = temperature
"""


def test_optunahub_package_from_the_local_copy_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_spec: Callable[..., Path], capsys: Any
) -> None:
    root = tmp_path / "optunahub-registry" / "package"
    (root / "samplers" / "tiny").mkdir(parents=True)
    # laid out as registry packages are: the class in a module, exported by __init__.py
    (root / "samplers" / "tiny" / "sampler.py").write_text(HUB_PACKAGE)
    (root / "samplers" / "tiny" / "__init__.py").write_text("from .sampler import HubSampler\n")
    sampler = {"type": "optunahub:samplers/tiny:HubSampler", "options": {"temperature": 2.0}}
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, "optunahub:samplers/tiny")
    monkeypatch.delenv(ENV_OPTUNAHUB_DIR, raising=False)
    (line,) = _validate(base_spec(sampler=sampler), write_spec, capsys)
    assert "sampler.type: OptunaHub packages load from a local copy only, and " in line
    monkeypatch.setenv(ENV_OPTUNAHUB_DIR, str(root))

    def fetch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fetched from the network")

    monkeypatch.setattr(optunahub, "load_module", fetch)
    built = build_sampler(_spec(sampler=sampler))._base
    assert type(built).__name__ == "HubSampler" and built.temperature == 2.0
    other = {"type": "optunahub:samplers/other:HubSampler"}
    (line,) = _validate(base_spec(sampler=other), write_spec, capsys)
    assert "'optunahub:samplers/other' is not allowed in this deployment" in line
    monkeypatch.setenv(ENV_ALLOWED_SEARCH_MODULES, "optunahub:samplers")
    (line,) = _validate(base_spec(sampler=other), write_spec, capsys)
    assert "no OptunaHub package 'samplers/other' in HPO_OPTUNAHUB_DIR" in line

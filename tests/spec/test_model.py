"""Every validation rule of the sweep spec: the error names the field path and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_core.errors import SpecError
from hpo_core.objectives import parse_spec  # the entry points' loader: objective names known too
from hpo_core.spec import count_discrete_combinations, load_spec, summarize_spec
from tests.helpers import base_spec

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs", "hpo").glob("*.yaml"))


def _errors(spec: dict[str, Any] | str) -> list[str]:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return [str(issue) for issue in info.value.issues]


def _with_param(name: str, param: dict[str, Any], **top: Any) -> dict[str, Any]:
    spec = base_spec(**top)
    spec["param_ranges"] = {**copy.deepcopy(spec["param_ranges"]), name: param}
    return spec


BAD_PARAMS = [
    (
        "low > high",
        {"type": "float", "low": 5, "high": 1},
        "param_ranges.p.high: `low <= high` must hold, but got (low=5, high=1)",
    ),
    ("int low > high", {"type": "int", "low": 9, "high": 3}, "param_ranges.p.high: `low <= high`"),
    (
        "log with low 0",
        {"type": "float", "low": 0.0, "high": 0.1, "log": True},
        "param_ranges.p.low: `low > 0` must hold for log: true",
    ),
    (
        "log with negative low",
        {"type": "float", "low": -1, "high": 0.1, "log": True},
        "param_ranges.p.low: `low > 0`",
    ),
    (
        "int log with low 0",
        {"type": "int", "low": 0, "high": 8, "log": True},
        "param_ranges.p.low: `low >= 1` must hold for log: true",
    ),
    (
        "step not dividing",
        {"type": "int", "low": 2, "high": 7, "step": 2},
        "param_ranges.p.step: must divide `high - low`, but got (low=2, high=7, step=2); set high to 6",
    ),
    (
        "float step not dividing",
        {"type": "float", "low": 0, "high": 1, "step": 0.3},
        "param_ranges.p.step: must divide `high - low`",
    ),
    (
        "step with log",
        {"type": "float", "low": 1e-3, "high": 1, "log": True, "step": 0.1},
        "param_ranges.p.step: cannot be combined with log: true",
    ),
    ("missing low", {"type": "float", "high": 1}, "param_ranges.p.low: required for type float"),
    (
        "fractional int bound",
        {"type": "int", "low": 1.5, "high": 4},
        "param_ranges.p.low: must be a whole number for type int",
    ),
    ("empty choices", {"type": "categorical", "choices": []}, "param_ranges.p.choices: is empty"),
    (
        "no choices",
        {"type": "categorical"},
        "param_ranges.p.choices: required for type categorical",
    ),
    (
        "duplicate choices",
        {"type": "categorical", "choices": [8, 16, 8]},
        "param_ranges.p.choices: has duplicates [8]",
    ),
    (
        "weights count",
        {"type": "categorical", "choices": ["a", "b"], "weights": [1.0]},
        "param_ranges.p.weights: needs one weight per choice: got 1 weights for 2 choices",
    ),
    (
        "weights zero",
        {"type": "categorical", "choices": ["a", "b"], "weights": [1.0, 0.0]},
        "param_ranges.p.weights: must all be positive finite numbers, but got [0.0]",
    ),
    (
        "weights negative",
        {"type": "categorical", "choices": ["a", "b"], "weights": [-1, 2]},
        "param_ranges.p.weights: must all be positive",
    ),
    (
        "choices on float",
        {"type": "float", "low": 0, "high": 1, "choices": [1]},
        "param_ranges.p.choices: not allowed for type float",
    ),
    ("bounds on bool", {"type": "bool", "low": 0}, "param_ranges.p.low: not allowed for type bool"),
    (
        "bad type",
        {"type": "floot", "low": 0, "high": 1},
        "param_ranges.p.type: must be one of 'float', 'int', 'categorical' or 'bool', but got 'floot' "
        "(did you mean 'float'?)",
    ),
    (
        "unknown param key",
        {"type": "float", "low": 0, "high": 1, "setp": 0.1},
        "param_ranges.p.setp: unknown key (did you mean 'step'?)",
    ),
    (
        "condition on unknown",
        {"type": "float", "low": 1, "high": 2, "when": {"use_cosin": True}},
        "param_ranges.p.when.use_cosin: conditions on unknown parameter 'use_cosin'",
    ),
    (
        "impossible condition value",
        {"type": "int", "low": 1, "high": 2, "when": {"encoder_type": "rnn"}},
        'param_ranges.p.when.encoder_type: encoder_type can never be "rnn" (choices "cnn", "context")',
    ),
    (
        "condition on itself",
        {"type": "bool", "when": {"p": True}},
        "param_ranges.p.when.p: a parameter cannot depend on itself",
    ),
    (
        "condition never true for fixed",
        {"type": "bool", "when": {"epochs": 5}},
        "param_ranges.p.when.epochs: epochs is fixed to 2, so p would never be sampled",
    ),
]


@pytest.mark.parametrize(("case", "param", "expected"), BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_parameter_is_named_with_its_fix(
    case: str, param: dict[str, Any], expected: str
) -> None:
    errors = _errors(_with_param("p", param))
    assert any(expected in e for e in errors), errors


BAD_TOP = [
    (
        "n_trials < 1",
        {"n_trials": 0},
        "n_trials: Input should be greater than or equal to 1, but got 0",
    ),
    (
        "bad direction",
        {"direction": "maximise"},
        "direction: must be one of 'maximize' or 'minimize', but got 'maximise' (did you mean 'maximize'?)",
    ),
    (
        "unknown objective",
        {"objective": "synthetik"},
        "objective: unknown objective 'synthetik' (did you mean 'synthetic'?)",
    ),
    (
        "malformed objective path",
        {"objective": "my.module:"},
        "objective: 'my.module:' is not of the form `package.module:function`",
    ),
    ("bad study name", {"study_name": "has space"}, "study_name: must be 1-120 letters"),
    (
        "bad sampler",
        {"sampler": {"type": "cmaess"}},
        "sampler.type: must be one of 'tpe', 'random', 'cmaes', 'qmc', 'gp', 'nsga2', "
        "`package.module:Class` or `optunahub:<category>/<name>:Class`, but got 'cmaess' "
        "(did you mean 'cmaes'?)",
    ),
    (
        "malformed sampler class path",
        {"pruner": {"type": "my.module:"}},
        "pruner.type: must be one of 'hyperband', 'median', 'none', `package.module:Class`",
    ),
    (
        "a built-in's field on a class of one's own",
        {"sampler": {"type": "my.samplers:Mine", "constant_liar": False}},
        "sampler.constant_liar: configures Optuna's built-in samplers, not my.samplers:Mine; "
        "pass it in `options:` if that class takes it",
    ),
    (
        "options repeat a field",
        {"sampler": {"type": "tpe", "options": {"n_startup_trials": 3}}},
        "sampler.options.n_startup_trials: is a field of sampler: set "
        "`sampler.n_startup_trials` instead",
    ),
    (
        "bad pruner key",
        {"pruner": {"type": "hyperband", "min_resources": 3}},
        "pruner.min_resources: unknown key (did you mean 'min_resource'?)",
    ),
    (
        "hyperband resources",
        {"pruner": {"type": "hyperband", "min_resource": 5, "max_resource": 3}},
        "pruner.max_resource: `min_resource <= max_resource` must hold",
    ),
    (
        "checkpoint past budget",
        {"decision": {"checkpoints": [5, 20]}},
        "decision.checkpoints.1: `checkpoint < n_trials` must hold, but got (checkpoint=20, n_trials=10)",
    ),
    (
        "checkpoints unordered",
        {"decision": {"checkpoints": [6, 3]}},
        "decision.checkpoints: must be strictly increasing",
    ),
    (
        "decision thresholds swapped",
        {"decision": {"stop_if_best_worse_than": 0.5, "on_track_if_best_better_than": 0.3}},
        "decision.on_track_if_best_better_than: `stop_if_best_worse_than <= on_track_if_best_better_than`",
    ),
    (
        "grace too short",
        {"worker": {"heartbeat_interval": 10, "grace_period": 5}},
        "worker.grace_period: `grace_period > heartbeat_interval` must hold",
    ),
    (
        "noise probe not a count",
        {"decision": {"checkpoints": [5], "noise_probe": -1}},
        "decision.noise_probe: Input should be greater than or equal to 0, but got -1",
    ),
    (
        "noise sd not positive",
        {"analysis": {"noise_sd": 0}},
        "analysis.noise_sd: Input should be greater than 0, but got 0",
    ),
    (
        "unknown promotion test",
        {"champions": {"promote_test": "ttest"}},
        "champions.promote_test: must be one of 'welch' or 'k_se', but got 'ttest'",
    ),
    (
        "promotion alpha too large",
        {"champions": {"promote_alpha": 0.9}},
        "champions.promote_alpha: Input should be less than or equal to 0.5, but got 0.9",
    ),
    (
        "promotion k not positive",
        {"champions": {"promote_k": 0}},
        "champions.promote_k: Input should be greater than 0, but got 0",
    ),
    ("section not a mapping", {"sampler": "tpe"}, "sampler: must be a mapping"),
    ("fixed not plain data", {"fixed": {"epochs": {"a": object.__name__}}}, None),
]


@pytest.mark.parametrize(("case", "change", "expected"), BAD_TOP, ids=[c[0] for c in BAD_TOP])
def test_bad_top_level_field_is_named_with_its_fix(
    case: str, change: dict[str, Any], expected: str | None
) -> None:
    if expected is None:  # a valid nesting: no error expected
        parse_spec(yaml.safe_dump(base_spec(**change)))
        return
    errors = _errors(base_spec(**change))
    assert any(expected in e for e in errors), errors


def test_unknown_top_level_key_suggests_the_close_match() -> None:
    spec = base_spec()
    spec["param_range"] = spec.pop("param_ranges")
    errors = _errors(spec)
    assert any(
        e.startswith("param_range: unknown key (did you mean 'param_ranges'?)") for e in errors
    )


def test_storage_key_says_where_storage_comes_from() -> None:
    errors = _errors(base_spec(storage="postgresql://db/optuna"))
    assert any(
        "storage: unknown key; storage URLs are never read from a config" in e for e in errors
    )


def test_parameter_both_fixed_and_ranged() -> None:
    spec = base_spec()
    spec["fixed"]["x"] = 0.5
    assert any("param_ranges.x: is also in fixed (fixed.x=0.5)" in e for e in _errors(spec))


def test_condition_cycle_is_refused() -> None:
    spec = base_spec()
    spec["param_ranges"]["a"] = {"type": "bool", "when": {"b": True}}
    spec["param_ranges"]["b"] = {"type": "bool", "when": {"a": True}}
    assert any("conditions form a cycle" in e for e in _errors(spec))


def test_password_in_any_url_is_refused() -> None:
    spec = base_spec(data={"source": {"url": "postgresql://alice:s3cret@db:5432/x"}})
    errors = _errors(spec)
    assert errors == [
        "data.source.url: contains a password in a URL; credentials never live in a config: pass "
        "them through the environment (HPO_STORAGE_URL), an Airflow connection or a Kubernetes secret"
    ]
    # a URL with a user but no password is fine
    parse_spec(yaml.safe_dump(base_spec(data={"url": "postgresql://alice@db/x"})))


def test_every_problem_is_reported_at_once() -> None:
    spec = base_spec(n_trials=0, direction="up")
    spec["param_ranges"]["x"] = {"type": "float", "low": 2, "high": 1}
    spec["param_ranges"]["t"] = {"type": "float", "low": 1, "high": 2, "when": {"nope": 1}}
    spec["fixed"]["encoder_type"] = "cnn"
    errors = _errors(spec)
    paths = {e.split(":")[0] for e in errors}
    assert {
        "n_trials",
        "direction",
        "param_ranges.x.high",
        "param_ranges.t.when.nope",
        "param_ranges.encoder_type",
    } <= paths, errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "study_name: [a,\nn_trials: 3\n",
            "line 3, column 1: YAML syntax error: did not find expected ',' or ']'",
        ),
        ("study_name: a\n  n_trials: 3\n", "line 2, column"),
        (
            "study_name: a\nstudy_name: b\n",
            "line 2, column 1: YAML syntax error: duplicate key 'study_name'",
        ),
        ("- just\n- a list\n", "must be a YAML mapping of sections"),
        ("", "the file is empty"),
        ("42", "the file is a int"),
    ],
)
def test_yaml_problems_give_line_numbers(text: str, expected: str) -> None:
    errors = _errors(text)
    assert len(errors) == 1 and expected in errors[0], errors


def test_user_configs_validate() -> None:
    names = {p.name for p in CONFIGS}
    assert {
        "visual_classifier_v2_expanded.yaml",
        "visual_classifier_v3_refined.yaml",
        "visual_classifier_v3_intelligent.yaml",
        "demo.yaml",
    } <= names
    for path in CONFIGS:
        load_spec(path)


def test_v2_discrete_space_counts_both_arms() -> None:
    spec = load_spec(
        next(p for p in CONFIGS if p.name == "visual_classifier_v2_expanded.yaml")
    ).spec
    # CNN arm: batch 4 x embed 5 x scheduler 2 x cosine 2 x demo_agg 2 x depth 5 x mlp 4 x coords 2
    cnn = 4 * 5 * 2 * 2 * 2 * 5 * 4 * 2
    # context arm: batch 4 x embed 5 x scheduler 2 x cosine 2 x d_model 4 x heads 3 x pixel 5 x grid 3
    context = 4 * 5 * 2 * 2 * 4 * 3 * 5 * 3
    assert cnn == 6_400  # the user's own figure in seed 002
    assert count_discrete_combinations(spec) == cnn + context
    summary = summarize_spec(spec)
    assert summary.conditional['encoder_type="cnn"'] == [
        "demo_agg",
        "width_mult",
        "depth",
        "mlp_hidden",
        "use_coords",
    ]
    assert "temperature" in summary.conditional["use_cosine=true"]


def test_v3_config_carries_seed_001_design() -> None:
    spec = load_spec(
        next(p for p in CONFIGS if p.name == "visual_classifier_v3_intelligent.yaml")
    ).spec
    assert spec.fixed["use_scheduler"] is True and spec.fixed["label_smoothing"] == 0.0
    assert spec.param_ranges["encoder_type"].weights == [0.75, 0.25]
    assert (spec.param_ranges["depth"].low, spec.param_ranges["depth"].high) == (3, 10)
    assert spec.decision.stop_if_best_worse_than == 0.26


def test_hash_ignores_comments_and_key_order() -> None:
    a = parse_spec("study_name: s\nn_trials: 3\nobjective: noop\n")
    b = parse_spec("# comment\nobjective: noop   # same\nn_trials: 3\nstudy_name: 's'\n")
    c = parse_spec("study_name: s\nn_trials: 4\nobjective: noop\n")
    assert a.hash == b.hash != c.hash


def test_values_are_counted_without_listing_them() -> None:
    """`hpo validate` counts discrete combinations; an int range of 0..1e9 is a count, not a
    list of a billion ints (which took gigabytes before)."""
    small = {
        "i": {"type": "int", "low": 2, "high": 11, "step": 3},
        "il": {"type": "int", "low": 1, "high": 64, "log": True},
        "f": {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1},
        "c": {"type": "categorical", "choices": ["a", "b", "c"]},
        "b": {"type": "bool"},
    }
    params = parse_spec(yaml.safe_dump(base_spec(param_ranges=small))).spec.param_ranges
    for name, param in params.items():
        assert param.n_values == len(param.possible_values or []), name
    huge = {
        "n": {"type": "int", "low": 0, "high": 10**9},
        "arm": {"type": "categorical", "choices": ["a", "b"]},
        "k": {"type": "int", "low": 1, "high": 10**6, "when": {"arm": "a"}},
    }
    spec = parse_spec(yaml.safe_dump(base_spec(param_ranges=huge))).spec
    assert count_discrete_combinations(spec) == (10**9 + 1) * 10**6 + (10**9 + 1)  # a, then b
    assert summarize_spec(spec).continuous == []


def test_summary_shows_the_sampler_and_pruner_with_their_arguments() -> None:
    spec = parse_spec(
        yaml.safe_dump(
            base_spec(
                sampler={"type": "cmaes", "seed": 4, "options": {"popsize": 8}},
                pruner={"type": "optuna.pruners:PercentilePruner", "options": {"percentile": 25}},
            )
        )
    ).spec
    summary = summarize_spec(spec)
    assert summary.sampler == "cmaes (seed=4, popsize=8)"
    assert summary.pruner == "optuna.pruners:PercentilePruner (percentile=25)"

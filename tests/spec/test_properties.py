"""Property-based tests of the spec loader: valid specs round-trip and sample inside their space;
any junk gives a SpecError (one line per issue, naming a field path) and never another exception.

Examples are derandomized (fixed per test) so CI never meets a new one; the explicit ``@example``
cases are inputs that once leaked a non-HpoError exception or a multi-line issue.
"""

from __future__ import annotations

import copy
import math
import random
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from hpo_core.errors import SpecError
from hpo_core.spec import SweepSpec, load_spec, parse_spec
from hpo_core.study import build_sampler, suggest_params
from tests.strategies import NAMES, SCALARS, ci, typed_key, valid_spec_dicts

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _dump(spec: dict[str, Any]) -> str:
    # not allow_unicode=True: PyYAML then reads a written NEL (\x85) back as a space
    return yaml.safe_dump(spec, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# valid specs: parse, round-trip, sample inside the space


@ci(120)
@given(valid_spec_dicts())
def test_valid_specs_parse_and_round_trip(data: dict[str, Any]) -> None:
    text = _dump(data)
    loaded = parse_spec(text)
    assert loaded.text == text
    assert list(loaded.spec.param_ranges) == list(data["param_ranges"])
    # dumped back from the model and re-read: the same spec, the same hash
    again = parse_spec(yaml.safe_dump(loaded.spec.model_dump(mode="json")))
    assert again.spec == loaded.spec
    assert again.hash == loaded.hash
    # formatting and key order do not change the spec or its hash
    reordered = yaml.safe_dump(data, sort_keys=True, default_flow_style=True)
    assert parse_spec(reordered).hash == loaded.hash
    # nor does a comment
    assert parse_spec("# a comment\n" + text).hash == loaded.hash


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _condition_met(when: dict[str, Any] | None, values: dict[str, Any]) -> bool:
    for parent, wanted in (when or {}).items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if parent not in values or not any(_same(values[parent], o) for o in options):
            return False
    return True


def _check_value(p: dict[str, Any], v: Any) -> None:
    if p["type"] == "bool":
        assert isinstance(v, bool)
    elif p["type"] == "categorical":
        assert any(typed_key(v) == typed_key(c) for c in p["choices"]), (v, p["choices"])
    elif p["type"] == "int":
        assert isinstance(v, int) and not isinstance(v, bool)
        assert p["low"] <= v <= p["high"]
        if not p.get("log"):
            assert (v - p["low"]) % p.get("step", 1) == 0
    else:
        assert isinstance(v, float) and math.isfinite(v)  # np.float64 for a 5e-324 range
        assert p["low"] <= v <= p["high"], (v, p)
        if p.get("step"):
            k = (v - p["low"]) / p["step"]
            assert abs(k - round(k)) < 1e-6, (v, p)


@ci(60)
@given(valid_spec_dicts(min_params=1), st.integers(2, 8))
def test_sampling_stays_inside_the_space(data: dict[str, Any], n: int) -> None:
    spec = parse_spec(_dump(data)).spec
    study = optuna.create_study(sampler=build_sampler(spec), direction=spec.direction)
    rng = random.Random(n)
    for _ in range(n):
        trial = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's own notes on float steps and TPE
            values = suggest_params(trial, spec)
        study.tell(trial, rng.random())
        for name, v in data["fixed"].items():
            assert _same(values[name], v)
        seen = dict(data["fixed"])
        for name in spec.sampling_order():
            p = data["param_ranges"][name]
            active = _condition_met(p.get("when"), seen)
            assert (name in values) == active, (name, p.get("when"), values)
            if active:
                _check_value(p, values[name])
                seen[name] = values[name]
        assert set(values) == set(seen)


# ---------------------------------------------------------------------------------------------
# junk: a SpecError, never another exception


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4
    )


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    _containers,
    max_leaves=16,
)

_SECTION_KEYS = {
    name: list(field.annotation.model_fields)  # type: ignore[union-attr]
    for name, field in SweepSpec.model_fields.items()
    if hasattr(field.annotation, "model_fields")
}
_PARAM_KEYS = ["type", "low", "high", "log", "step", "choices", "weights", "when", "description"]
NEAR_VALUES = (
    JUNK
    | st.sampled_from(
        [
            "float",
            "int",
            "categorical",
            "bool",
            "tpe",
            "random",
            "none",
            "median",
            "hyperband",
            "auto",
            "synthetic",
            "maximize",
            "minimize",
            "@daily",
            "a\nb",
            math.inf,
            -math.inf,
            math.nan,
            0,
            -1,
            2**40,
            [],
            {},
        ]
    )
    | st.floats(-10, 10)
    | st.integers(-10, 10)
)


@st.composite
def near_param(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(JUNK)
    keys = draw(st.lists(st.sampled_from([*_PARAM_KEYS, "bogus"]), unique=True, max_size=6))
    p = {k: draw(NEAR_VALUES) for k in keys}
    if draw(st.booleans()):
        p["type"] = draw(st.sampled_from(["float", "int", "categorical", "bool"]))
    if "when" in p and draw(st.booleans()):
        p["when"] = {draw(NAMES | st.text(max_size=3)): draw(NEAR_VALUES)}
    return p


@st.composite
def near_specs(draw: st.DrawFn) -> dict[Any, Any]:
    """Mappings with the spec's own keys (and some others) holding random values."""
    top = [*SweepSpec.model_fields, "storage", "n_workers", "bogus"]
    spec: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from(top), unique=True, max_size=10)):
        if key in _SECTION_KEYS and draw(st.booleans()):
            keys = draw(st.lists(st.sampled_from([*_SECTION_KEYS[key], "bogus"]), unique=True))
            spec[key] = {k: draw(NEAR_VALUES) for k in keys}
        elif key == "param_ranges" and draw(st.booleans()):
            names = draw(st.lists(NAMES | st.text(max_size=4), unique=True, max_size=4))
            spec[key] = {n: draw(near_param()) for n in names}
        elif key == "fixed" and draw(st.booleans()):
            spec[key] = draw(st.dictionaries(NAMES | st.integers(), JUNK, max_size=3))
        else:
            spec[key] = draw(NEAR_VALUES)
    return spec


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    """A valid spec with a few random edits: a key deleted, a value replaced, a key added."""
    spec = copy.deepcopy(draw(valid_spec_dicts()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(spec)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        *head, last = path
        parent = spec
        for part in head:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(NEAR_VALUES)
        elif isinstance(parent[last], dict):
            parent[last][draw(NAMES | st.text(max_size=4))] = draw(NEAR_VALUES)
    return spec


def _check_spec_error(exc: SpecError, data: Any = None) -> None:
    assert exc.issues, "a SpecError lists at least one issue"
    assert len(str(exc).splitlines()) == len(exc.issues), str(exc)
    for issue in exc.issues:
        assert len(str(issue).splitlines()) == 1, repr(str(issue))
        if isinstance(data, dict):
            tops = {*map(str, data), *SweepSpec.model_fields}
            assert issue.path.startswith(("line ", "YAML")) or any(
                issue.path == t or issue.path.startswith(t + ".") for t in tops
            ), (issue.path, str(issue))
        else:
            assert issue.path or issue.message.startswith(
                (
                    "must be a YAML mapping",
                    "cannot be read",
                    "file not found",
                    "is not UTF-8 text",
                    "is larger than",
                )
            ), str(issue)


def _refused(text: str, data: Any = None) -> None:
    """The text is refused with a SpecError (and nothing else) that lists well-formed issues."""
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    _check_spec_error(info.value, data)


@ci(150)
@given(JUNK | near_specs())
@example({"metrics": [1]})
@example({"param_ranges": {"x": {"type": "int", "low": 1, "high": 5, "step": math.inf}}})
@example({"param_ranges": {"x": {"type": "float", "low": 1, "high": 5, "step": math.nan}}})
@example({"schedule": "a\nb"})
@example({"param_ranges": {"a\nb": {"type": "bool", "bogus": 1}}})
@example({"fixed": {1: 2}, "param_ranges": {"x": {"type": "bool", "when": {"zz": 1}}}})
@example({"fixed": {"a\u2028b": 1}})
def test_junk_values_give_spec_errors(data: Any) -> None:
    try:
        text = yaml.safe_dump(data)  # allow_unicode=True reads "\x85" back as " "
    except yaml.YAMLError:
        text = yaml.safe_dump(repr(data))
    _refused(text, data)


@ci(150)
@given(mutated_specs())
def test_mutated_specs_parse_or_give_spec_errors(data: Any) -> None:
    # an edit often leaves a valid spec (70 of the 150 fixed examples: a description replaced,
    # an optional key deleted); the others must be refused with a well-formed SpecError
    try:
        parse_spec(_dump(data))
    except SpecError as exc:
        _check_spec_error(exc, data)


YAML_PIECES = st.sampled_from(
    [
        "study_name: s\n",
        "n_trials: 5\n",
        "objective: synthetic\n",
        "param_ranges:\n",
        "  x: {type: float, low: 0, high: 1}\n",
        "  y:\n    type: int\n",
        "    low: 1\n",
        "a: 2020-02-30\n",
        "b: 2001-12-14t21:59:43.10-25:00\n",
        "? [a, b]\n: 1\n",
        "? {a: 1}\n: 1\n",
        "data: &x [*x]\n",
        "fixed: &y {a: *y}\n",
        "c: !!binary 'abc'\n",
        "d: !!python/name:os.system\n",
        "<<: 1\n",
        "e: *nope\n",
        "f: [[[[[[\n",
        "\t- \n",
        "'\n",
        "%YAML 1.1\n---\n",
        "--- \n",
        "...\n",
        "k: v\nk: w\n",
        "\ufeff",
        "\x00",
    ]
)


@ci(150)
@given(st.lists(YAML_PIECES | st.text(max_size=12), max_size=8).map("".join))
@example("[" * 5000)
@example("a: 2020-02-30\n")
@example("? [a, b]\n: 1\n")
@example("study_name: s\nn_trials: 5\nobjective: synthetic\ndata: &x [*x]\n")
def test_random_text_gives_spec_errors(text: str) -> None:
    _refused(text)


@ci(60)
@given(st.binary(max_size=200))
@example(b"\xff\xfe\x00")
def test_random_files_give_spec_errors(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_bytes(raw)
        with pytest.raises(SpecError) as info:
            load_spec(path)
        _check_spec_error(info.value)
        assert str(info.value).startswith(str(path))


# ---------------------------------------------------------------------------------------------
# limits: aliases, size, depth — refused with one SpecError, at once, whatever the document


def _refused_fast(text: str, expect: str) -> None:
    # this process's CPU time, not the wall clock: other test processes sharing the cores slow
    # the clock, not the work (an expansion that ran first would take seconds to minutes)
    started = time.process_time()
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert time.process_time() - started < 1.0, "a limit must hold before the work, not after"
    _check_spec_error(info.value)
    assert any(expect in str(issue) for issue in info.value.issues), str(info.value)


@st.composite
def specs_with_aliases(draw: st.DrawFn) -> str:
    """A valid spec in which some value appears twice, so the YAML dumper writes it once with an
    anchor (&id001) and then as an alias (*id001); or a bomb of aliases nested ``depth`` deep."""
    spec = draw(valid_spec_dicts())
    kind = draw(st.sampled_from(["shared", "bomb", "anchor_only"]))
    if kind == "shared":
        shared: Any = draw(
            st.sampled_from([spec["sampler"], spec["decision"], spec["analysis"]])
            | st.lists(SCALARS, min_size=1, max_size=4)
        )
        spec["data"] = {"first": shared, "again": shared}
        return _dump(spec)
    text = _dump(spec)
    if kind == "anchor_only":  # an anchor nobody refers to is refused as well
        return text.replace("n_trials: ", "n_trials: &n ", 1)
    width, depth = draw(st.integers(2, 10)), draw(st.integers(2, 12))
    bomb = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    bomb += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
    return text + "data:\n" + "".join(f"  {line}\n" for line in bomb)


@ci(40)
@given(specs_with_aliases())
@example(  # the classic: 9 aliases, 9 deep, a billion strings once expanded
    "data:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8)
    )
)
def test_anchors_and_aliases_are_refused_at_once(text: str) -> None:
    _refused_fast(text, "YAML anchors and aliases (&name, *name) are not allowed")


@st.composite
def oversized_specs(draw: st.DrawFn) -> str:
    """A valid spec padded just past 1 MiB: a comment, a long text, many keys or many choices."""
    text = _dump(draw(valid_spec_dicts()))
    missing = (1 << 20) - len(text.encode()) + draw(st.integers(1, 4096))
    pad = draw(st.sampled_from(["comment", "text", "keys", "choices", "multibyte"]))
    if pad == "comment":
        return text + "#" * missing
    if pad == "text":
        return text + "notes: " + "x" * missing + "\n"
    if pad == "multibyte":  # fewer characters than bytes: the limit is on bytes
        return text + "notes: " + "é" * (missing // 2 + 1) + "\n"
    if pad == "keys":
        rows = "".join(f"  k{i}: {i}\n" for i in range(missing // 8 + 1))
        return text + "more:\n" + rows
    return text + "extra: [" + ", ".join(str(i) for i in range(missing // 7 + 1)) + "]\n"


@ci(20)
@given(oversized_specs())
def test_oversized_specs_are_refused_before_parsing(text: str) -> None:
    assert len(text.encode()) > 1 << 20
    _refused_fast(text, "is larger than 1 MiB, the limit for a sweep spec (YAML)")


@ci(30)
@given(st.integers(33, 100_000), st.sampled_from(["[", "{a: ", "- "]))
@example(100_000, "[")
def test_nesting_past_the_limit_is_refused_without_recursion(depth: int, opener: str) -> None:
    if opener == "- ":  # block style: each level one line deeper (and two columns, so fewer)
        depth = min(depth, 300)
        text = "data:\n" + "".join("  " * (i + 1) + "-\n" for i in range(depth))
        text += "  " * (depth + 1) + "x\n"
    else:
        text = "data: " + opener * depth
    _refused_fast(text, "nested deeper than 32 levels; flatten it")


def test_condition_on_a_wide_int_range_is_checked_without_listing_it() -> None:
    """Found while writing these: checking `when: {depth: 7}` listed every value of depth
    (0 to 1e12 here: a MemoryError after minutes instead of a spec)."""
    spec = {
        "study_name": "s",
        "n_trials": 5,
        "objective": "synthetic",
        "param_ranges": {
            "depth": {"type": "int", "low": 0, "high": 10**12},
            "width": {"type": "int", "low": 1, "high": 4, "when": {"depth": 7}},
            "other": {"type": "bool", "when": {"depth": [3.5, -1]}},
        },
    }
    with pytest.raises(SpecError) as info:
        parse_spec(_dump(spec))
    assert [str(i) for i in info.value.issues] == [
        "param_ranges.other.when.depth: depth can never be 3.5, -1 (range [0, 1000000000000]); "
        "use one of its values"
    ]
    del spec["param_ranges"]["other"]
    assert parse_spec(_dump(spec)).spec.param_ranges["width"].when == {"depth": 7}


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_sampler_seed_out_of_numpy_range_is_a_spec_error(seed: int) -> None:
    spec = {"study_name": "s", "n_trials": 5, "objective": "synthetic", "sampler": {"seed": seed}}
    with pytest.raises(SpecError, match=r"sampler\.seed"):
        parse_spec(_dump(spec))

"""Property-based tests of the spec loader: valid specs round-trip and sample inside their space;
any junk gives a SpecError (one line per issue, naming a field path) and never another exception.

Examples are derandomized (fixed per test) so CI never meets a new one; the explicit ``@example``
cases are inputs that once leaked a non-HpoError exception or a multi-line issue.
"""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hpo_core.errors import HpoError, SpecError
from hpo_core.spec import SweepSpec, load_spec, parse_spec
from hpo_core.study import build_sampler, suggest_params

# HPO_HYPOTHESIS_HUNT=N runs N times the examples, random ones: for hunting bugs locally.
_HUNT = int(os.environ.get("HPO_HYPOTHESIS_HUNT", "0"))


def ci(max_examples: int) -> settings:
    """Fixed examples in CI; no shrinking there either (a failure is reported at once, as found,
    instead of after minutes of shrinking): shrink when hunting."""
    phases = list(Phase) if _HUNT else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=max_examples * max(1, _HUNT),
        database=None,
        derandomize=not _HUNT,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


optuna.logging.set_verbosity(optuna.logging.WARNING)

# ---------------------------------------------------------------------------------------------
# strategies: valid specs


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=8)
)


def _key(value: Any) -> tuple[type, Any]:
    return (type(value), value)


@st.composite
def float_params(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "log", "step"]))
    if kind == "log":
        low = draw(st.floats(1e-8, 1e3))
        # not a range a few ulps wide: Optuna's TPE then draws NaN or exp(log(low)) < low
        factor = draw(st.just(1.0) | st.floats(1 + 1e-9, 1e6))
        return {"type": "float", "low": low, "high": low * factor, "log": True}
    if kind == "step":
        step = draw(st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 10.0]))
        start, k = draw(st.integers(-1000, 1000)), draw(st.integers(0, 40))
        low, high = round(start * step, 6), round((start + k) * step, 6)
        return {"type": "float", "low": low, "high": high, "step": step}
    low = draw(st.floats(-1e6, 1e6))
    return {"type": "float", "low": low, "high": low + draw(st.floats(0.0, 1e6))}


@st.composite
def int_params(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "log", "step"]))
    if kind == "log":
        low = draw(st.integers(1, 1000))
        p: dict[str, Any] = {"type": "int", "low": low, "high": low + draw(st.integers(0, 10**4))}
        p["log"] = True
        if draw(st.booleans()):
            p["step"] = 1
        return p
    low = draw(st.integers(-1000, 1000))
    if kind == "step":
        step = draw(st.integers(1, 10))
        return {"type": "int", "low": low, "high": low + step * draw(st.integers(0, 30))}
    return {"type": "int", "low": low, "high": low + draw(st.integers(0, 1000))}


@st.composite
def categorical_params(draw: st.DrawFn) -> dict[str, Any]:
    choices = draw(st.lists(SCALARS, min_size=1, max_size=5, unique_by=_key))
    p: dict[str, Any] = {"type": "categorical", "choices": choices}
    if draw(st.booleans()):
        p["weights"] = draw(
            st.lists(st.floats(1e-3, 1e3), min_size=len(choices), max_size=len(choices))
        )
    return p


def _possible(p: dict[str, Any]) -> list[Any] | None:
    """The values a (small) parent can take, for conditions; None for a numeric range."""
    if p["type"] == "bool":
        return [True, False]
    if p["type"] == "categorical":
        return list(p["choices"])
    if p["type"] == "int" and not p.get("log") and p["high"] - p["low"] <= 50:
        return list(range(p["low"], p["high"] + 1, p.get("step", 1)))
    if p["type"] == "int" or (p["type"] == "float" and "step" not in p):
        return [p["low"], p["high"]]  # a wide range: checked without listing its values
    return None


@st.composite
def valid_spec_dicts(
    draw: st.DrawFn, *, min_params: int = 0, max_params: int = 7
) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=min_params, max_size=max_params + 3, unique=True))
    n_fixed = draw(st.integers(0, min(3, max(0, len(names) - min_params))))
    fixed = {n: draw(SCALARS) for n in names[:n_fixed]}
    params: dict[str, dict[str, Any]] = {}
    for name in names[n_fixed:]:
        p = dict(
            draw(
                st.one_of(
                    float_params(), int_params(), categorical_params(), st.just({"type": "bool"})
                )
            )
        )
        parents = [(n, v) for n, q in params.items() if (v := _possible(q))]
        parents += [(n, [v]) for n, v in fixed.items()]
        if parents and draw(st.integers(0, 2)) == 0:
            when: dict[str, Any] = {}
            for parent, values in draw(
                st.lists(st.sampled_from(parents), min_size=1, max_size=2, unique_by=lambda x: x[0])
            ):
                wanted = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
                when[parent] = wanted[0] if len(wanted) == 1 and draw(st.booleans()) else wanted
            p["when"] = when
        if draw(st.integers(0, 4)) == 0:
            p["description"] = draw(st.text(max_size=12))
        params[name] = p
    n_trials = draw(st.integers(1, 200))
    spec: dict[str, Any] = {
        "study_name": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)),
        "n_trials": n_trials,
        "direction": draw(st.sampled_from(["maximize", "minimize"])),
        "objective": "synthetic",
        "sampler": {
            "type": draw(st.sampled_from(["random", "tpe"])),
            "seed": draw(st.integers(0, 2**32 - 1)),
            "n_startup_trials": draw(st.integers(0, 5)),
            "multivariate": draw(st.booleans()),
            "constant_liar": draw(st.booleans()),
        },
        "pruner": draw(
            st.sampled_from(
                [
                    {"type": "none"},
                    {"type": "median", "n_startup_trials": 2},
                    {"type": "hyperband", "min_resource": 1, "max_resource": 9},
                ]
            )
        ),
        "fixed": fixed,
        "param_ranges": params,
    }
    checkpoints = sorted(set(draw(st.lists(st.integers(1, 200), max_size=3))))
    decision: dict[str, Any] = {"checkpoints": [c for c in checkpoints if c < n_trials]}
    if draw(st.booleans()):
        lo, hi = sorted(draw(st.lists(st.floats(-1, 2), min_size=2, max_size=2)))
        worse, better = (lo, hi) if spec["direction"] == "maximize" else (hi, lo)
        decision |= {"stop_if_best_worse_than": worse, "on_track_if_best_better_than": better}
    if draw(st.booleans()):
        decision["target"] = draw(st.floats(-1, 2))
    if draw(st.booleans()):
        decision["plateau_trials"] = draw(st.integers(1, 20))
    if draw(st.booleans()):
        decision["min_trials_for_failure_rate"] = draw(st.integers(1, 20))
    spec["decision"] = decision
    discrete = [n for n, p in params.items() if p["type"] in ("categorical", "bool")]
    spec["analysis"] = {
        "min_group_trials": draw(st.integers(2, 6)),
        "elite_quantile": draw(st.floats(0.05, 0.5)),
        "compare": draw(st.lists(st.sampled_from(discrete), unique=True)) if discrete else [],
    }
    refine: dict[str, Any] = {"expand_factor": draw(st.sampled_from([0.25, 0.5, 1.0, 3.0]))}
    numeric = [n for n, p in params.items() if p["type"] in ("float", "int")]
    with_limits: bool = draw(st.booleans())
    if numeric and with_limits:
        limits: dict[str, dict[str, float]] = {}
        for name in draw(st.lists(st.sampled_from(numeric), unique=True, max_size=3)):
            p, limit = params[name], {}
            if draw(st.booleans()):
                limit["low"] = p["low"] - draw(st.sampled_from([0, 0.5, 1, 10]))
            if draw(st.booleans()):
                limit["high"] = p["high"] + draw(st.sampled_from([0, 0.5, 1, 10]))
            limits[name] = limit
        refine["hard_limits"] = limits
    spec["refine"] = refine
    return spec


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
        assert any(_key(v) == _key(c) for c in p["choices"]), (v, p["choices"])
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


def _parse(text: str, data: Any = None) -> None:
    try:
        parse_spec(text)
    except SpecError as exc:
        _check_spec_error(exc, data)
    except HpoError:
        pass


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
    _parse(text, data)


@ci(150)
@given(mutated_specs())
def test_mutated_specs_give_spec_errors(data: Any) -> None:
    _parse(_dump(data), data)


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
    _parse(text)


@ci(60)
@given(st.binary(max_size=200))
@example(b"\xff\xfe\x00")
def test_random_files_give_spec_errors(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_bytes(raw)
        try:
            load_spec(path)
        except SpecError as exc:
            _check_spec_error(exc)
            assert str(exc).startswith(str(path))


# ---------------------------------------------------------------------------------------------
# limits: aliases, size, depth — refused with one SpecError, at once, whatever the document


def _refused_fast(text: str, expect: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert time.perf_counter() - started < 0.5, "a limit must hold before the work, not after"
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

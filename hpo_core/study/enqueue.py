"""Queue specific trials in a study (supplementary trials, seed 004), checked against its spec."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo_core.errors import SpecError, SpecIssue
from hpo_core.spec import SweepSpec, condition_holds
from hpo_core.study.study import SweepStudy
from hpo_core.userfiles import InputError, describe, parse_yaml, read_yaml

__all__ = [
    "MAX_TRIAL_FILE_BYTES",
    "check_trial_params",
    "enqueue_trials",
    "parse_assignments",
    "read_trial_file",
]

MAX_TRIAL_FILE_BYTES = 1 << 20  # `hpo top --out` of 1,000 trials is ~200 KB


def parse_assignments(text: str) -> dict[str, Any]:
    """``"lr=0.001,depth=4,use_cosine=false"`` -> typed values (YAML scalars)."""
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        if not sep or not name.strip():
            raise SpecError(
                [
                    SpecIssue(
                        "--params", f"{part!r} is not NAME=VALUE; separate assignments with commas"
                    )
                ]
            )
        try:
            value = parse_yaml(raw.strip()) if raw.strip() else None
        except InputError as exc:
            issue = SpecIssue(f"--params {name.strip()}", f"{raw.strip()!r}: {exc.problem}")
            raise SpecError([issue]) from None
        params[name.strip()] = value
    if not params:
        raise SpecError([SpecIssue("--params", "no NAME=VALUE given")])
    return params


def read_trial_file(path: str | Path) -> list[dict[str, Any]]:
    """A YAML or JSON file with one mapping of parameters, or a list of them."""
    file = Path(path)
    try:
        data = read_yaml(file, max_bytes=MAX_TRIAL_FILE_BYTES, what="a trial file (YAML or JSON)")
    except InputError as exc:
        where = f"{file}: {exc.where}" if exc.where else str(file)
        raise SpecError([SpecIssue("--file", f"{where}: {exc.problem}")]) from None
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and isinstance(item.get("params"), Mapping):
            item = item["params"]  # `hpo top --out` entries
        if not isinstance(item, Mapping):
            raise SpecError(
                [
                    SpecIssue(
                        f"--file {file}: entry {i}",
                        f"expected a mapping of parameter values (name: value), but got "
                        f"{describe(item)}",
                    )
                ]
            )
        keys = [k for k in item if not isinstance(k, str)]
        if keys:
            raise SpecError(
                [SpecIssue(f"--file {file}: entry {i}", f"{keys[0]!r} is not a parameter name")]
            )
        out.append(dict(item))
    return out


def check_trial_params(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The searched parameters of one trial, checked: known names, values inside the space,
    conditions consistent. Fixed parameters given with their fixed value are dropped; inactive
    conditional ones are refused (they would be ignored silently otherwise)."""
    issues: list[SpecIssue] = []
    out: dict[str, Any] = {}
    values = {**spec.fixed, **params}
    for name, value in params.items():
        if name in spec.fixed:
            if spec.fixed[name] != value:
                issues.append(
                    SpecIssue(
                        name,
                        f"is fixed to {spec.fixed[name]!r} in the spec; "
                        "drop it or start a new study",
                    )
                )
            continue
        p = spec.param_ranges.get(name)
        if p is None:
            issues.append(SpecIssue(name, "is not a parameter of this study; see `hpo spec`"))
            continue
        if not condition_holds(p.when, values):
            issues.append(
                SpecIssue(
                    name, f"is only used when {p.when}; give that parent value too, or remove it"
                )
            )
            continue
        if p.type == "bool":
            ok = isinstance(value, bool)
        elif p.type == "categorical":
            ok = value in (p.choices or []) and not (
                isinstance(value, bool) and not any(c is value for c in p.choices or [])
            )
        elif p.type == "int":
            ok = (
                isinstance(value, int)
                and not isinstance(value, bool)
                and (
                    p.low <= value <= p.high  # type: ignore[operator]
                )
            )
        else:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and (
                    p.low <= float(value) <= p.high  # type: ignore[operator]
                )
            )
            value = float(value) if ok else value
        if not ok:
            space = (
                f"one of {p.choices}"
                if p.type == "categorical"
                else "true or false"
                if p.type == "bool"
                else f"{p.type} in [{p.low:g}, {p.high:g}]"
            )
            issues.append(SpecIssue(name, f"{value!r} is outside the search space; use {space}"))
            continue
        out[name] = value
    if issues:
        raise SpecError(issues)
    return out


def enqueue_trials(sweep: SweepStudy, trials: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Check every trial first, then queue them (nothing is queued if one is bad). A trial whose
    parameters some trial of the study already has (queued, running or finished) is skipped, so
    running the same command twice queues nothing twice. Returns (queued, skipped)."""
    checked = [check_trial_params(sweep.spec, t) for t in trials]
    seen = {_key(t.params) for t in sweep.study.get_trials(deepcopy=False)}
    seen |= {
        _key(t.system_attrs.get("fixed_params", {}))
        for t in sweep.study.get_trials(deepcopy=False)
        if t.state.name == "WAITING"
    }
    queued = 0
    for params in checked:
        if _key(params) in seen:
            continue
        sweep.study.enqueue_trial(params)
        seen.add(_key(params))
        queued += 1
    return queued, len(checked) - queued


def _key(params: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((k, repr(v)) for k, v in params.items())

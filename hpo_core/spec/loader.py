"""Reading a sweep spec from YAML: every problem found, one line each, never a traceback."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hpo_core.errors import SpecError, SpecIssue
from hpo_core.spec.model import (
    DecisionSpec,
    FieldProblems,
    NextSpec,
    ParamSpec,
    PrunerSpec,
    SamplerSpec,
    SweepSpec,
    WarmStartSpec,
    WorkerSpec,
    cross_check,
)
from hpo_core.userfiles import InputError, parse_yaml, read_text

__all__ = [
    "MAX_SPEC_BYTES",
    "LoadedSpec",
    "find_url_passwords",
    "load_decision",
    "load_spec",
    "parse_spec",
    "spec_hash",
]

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: a spec is a few KB; a bigger file is the wrong file

# Which schema a nested mapping follows, by its location; `*` matches any key (a parameter name).
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): SweepSpec,
    ("sampler",): SamplerSpec,
    ("pruner",): PrunerSpec,
    ("decision",): DecisionSpec,
    ("worker",): WorkerSpec,
    ("warm_start",): WarmStartSpec,
    ("next",): NextSpec,
    ("param_ranges", "*"): ParamSpec,
}
_STORAGE_HINT = "storage URLs are never read from a config; pass --storage or set HPO_STORAGE_URL"
_KEY_HINTS = {
    "storage": _STORAGE_HINT,
    "storage_url": _STORAGE_HINT,
    "n_workers": "the number of workers is chosen at launch: `hpo sweep --workers N`",
    "workers": "the number of workers is chosen at launch: `hpo sweep --workers N`",
}


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the text it came from, as stored with its study."""

    spec: SweepSpec
    text: str  # the YAML exactly as written (comments included)
    hash: str  # sha256 of the normalised spec; equal for equal specs however they are written
    source: str  # file path, or "<string>"


def load_spec(
    path: str | Path,
    *,
    airflow: bool | None = None,
    objective_problem: Callable[[str], str | None] | None = None,
) -> LoadedSpec:
    """Read and validate a sweep spec file; raises :class:`SpecError` listing every problem.

    ``airflow=True`` checks a ``schedule:`` with Airflow's own timetable, importing Airflow if
    it is installed (``hpo validate``); see :func:`~hpo_core.spec.schedule.schedule_problem`.

    A bare objective name is checked only with ``objective_problem`` (the registry's, which
    returns the problem with a name it does not know): entry points read specs with
    :func:`hpo_core.objectives.load_spec`, which passes it.
    """
    source = str(path)
    try:
        text = read_text(path, max_bytes=MAX_SPEC_BYTES, what="a sweep spec (YAML)")
    except InputError as exc:
        raise SpecError([SpecIssue(exc.where, exc.problem)], source=source) from None
    return parse_spec(text, source=source, airflow=airflow, objective_problem=objective_problem)


def parse_spec(
    text: str,
    *,
    source: str = "<string>",
    airflow: bool | None = None,
    objective_problem: Callable[[str], str | None] | None = None,
) -> LoadedSpec:
    """Validate a sweep spec given as YAML text (``airflow``, ``objective_problem``: as for
    :func:`load_spec`)."""
    # the same limit as a file's: a stored spec or a test's text is refused before parsing too
    if len(text) > MAX_SPEC_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        problem = "is larger than 1 MiB, the limit for a sweep spec (YAML); check that this is "
        raise SpecError([SpecIssue("", problem + "the right file")], source=source)
    try:
        data = parse_yaml(text)
    except InputError as exc:
        raise SpecError(_masked([SpecIssue(exc.where, exc.problem)]), source=source) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            [
                SpecIssue(
                    "",
                    f"must be a YAML mapping of sections (study_name:, n_trials:, ...), "
                    f"but the file is {kind}",
                )
            ],
            source=source,
        )
    issues = [
        SpecIssue(path, f"contains a password in a URL; {_CREDENTIAL_FIX}")
        for path in find_url_passwords(data)
    ]
    try:
        context = {"airflow": airflow, "objective_problem": objective_problem}
        spec = SweepSpec.model_validate(data, context=context)
    except ValidationError as exc:
        issues += _issues_from(exc, data)
        issues += _lenient_cross_check(data)
        raise SpecError(_masked(_dedupe(issues)), source=source) from None
    if issues:
        raise SpecError(_masked(issues), source=source)
    return LoadedSpec(spec=spec, text=text, hash=spec_hash(spec), source=source)


_CREDENTIAL_FIX = (
    "credentials never live in a config: pass them through the environment "
    "(HPO_STORAGE_URL), an Airflow connection or a Kubernetes secret"
)


class _DecisionFile(BaseModel):
    decision: DecisionSpec  # other keys (a whole spec) are not this file's concern


def load_decision(path: str | Path, *, direction: str, n_trials: int | None = None) -> DecisionSpec:
    """Decision rules from a YAML file for a study of this ``direction`` and budget: a spec (its
    ``decision:`` section is read) or the section alone. Problems are :class:`SpecError` lines
    under ``decision.``, checked as in a spec (checkpoints below ``n_trials``, thresholds in
    order)."""
    source = str(path)
    try:
        data = parse_yaml(read_text(path, max_bytes=MAX_SPEC_BYTES, what="decision rules (YAML)"))
    except InputError as exc:
        raise SpecError(_masked([SpecIssue(exc.where, exc.problem)]), source=source) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        problem = f"must be a mapping with a decision: section (or the section alone), not {kind}"
        raise SpecError([SpecIssue("", problem)], source=source)
    section = data.get("decision", data)
    try:
        decision = _DecisionFile.model_validate({"decision": section}).decision
    except ValidationError as exc:
        raise SpecError(_masked(_dedupe(_issues_from(exc, data))), source=source) from None
    problems = cross_check(
        n_trials=n_trials, direction=direction, fixed={}, params={}, decision=decision
    )
    if problems:
        raise SpecError([SpecIssue(*p) for p in problems], source=source)
    return decision


def spec_hash(spec: SweepSpec) -> str:
    """Hash of the normalised spec: comments, quoting and key order do not change it."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_url_passwords(data: Any, path: str = "") -> list[str]:
    """Field paths of every string in ``data`` (keys too) that holds a URL with a password: what
    ``mask_url`` would hide, found the same way (the URL parsed, so an unencoded '@' or '/' in
    the password still counts)."""
    from hpo_core.storage.urls import has_url_password

    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and has_url_password(key):
                found.append(where)
            found += find_url_passwords(value, where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += find_url_passwords(value, f"{path}.{i}" if path else str(i))
    elif isinstance(data, str) and has_url_password(data):
        found.append(path)
    return found


def _masked(issues: list[SpecIssue]) -> list[SpecIssue]:
    """The issues with every URL password replaced by ``***``: a message may quote the value
    (or key) it rejects, and the password must not reach a terminal or a log."""
    from hpo_core.storage.urls import mask_url

    return [SpecIssue(mask_url(i.path), mask_url(i.message)) for i in issues]


def _issues_from(exc: ValidationError, data: dict[str, Any]) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc[-1:] == ["[key]"]:  # a mapping's key: its path is the key itself
            loc = loc[:-1]
        problem = (error.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblems):
            for field, message in problem.problems:
                issues.append(SpecIssue(".".join([*loc, field]), message))
            continue
        path = ".".join(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            issues.append(SpecIssue(path, _unknown_key_message(loc)))
        elif kind == "missing":
            issues.append(
                SpecIssue(
                    path, f"required; add `{loc[-1]}:` to the {'.'.join(loc[:-1]) or 'top level'}"
                )
            )
        elif kind == "literal_error":
            expected = (error.get("ctx") or {}).get("expected", "")
            got = error.get("input")
            hint = ""
            if isinstance(got, str):
                options = re.findall(r"'([^']*)'", str(expected))
                hint = _suggest(got, options)
            issues.append(SpecIssue(path, f"must be one of {expected}, but got {got!r}{hint}"))
        elif kind == "model_type" or kind == "dict_type":
            issues.append(
                SpecIssue(
                    path,
                    f"must be a mapping (indented `key: value` lines), "
                    f"but got {_kind(error.get('input'))}",
                )
            )
        else:
            message = error["msg"]
            message = message.removeprefix("Value error, ")
            if kind.startswith(
                ("int_", "float_", "bool_", "string_", "list_", "greater_", "less_")
            ):
                message += f", but got {error.get('input')!r}"
            issues.append(SpecIssue(path, message))
    return issues


def _lenient_cross_check(data: dict[str, Any]) -> list[SpecIssue]:
    """Cross-section checks on whatever parts of a broken spec did validate on their own.

    Pydantic skips model-level checks once any field fails; running them here lets one
    `hpo validate` list every problem instead of revealing them one fix at a time.
    """
    raw_params = data.get("param_ranges")
    params: dict[str, ParamSpec] = {}
    if isinstance(raw_params, dict):
        for name, raw in raw_params.items():
            try:
                params[str(name)] = ParamSpec.model_validate(raw)
            except ValidationError:
                continue
    raw_fixed = data.get("fixed")
    # keys that are not names were reported already, and would break the did-you-mean hints
    fixed = (
        {k: v for k, v in raw_fixed.items() if isinstance(k, str)}
        if isinstance(raw_fixed, dict)
        else {}
    )
    try:
        decision = DecisionSpec.model_validate(data.get("decision") or {})
    except ValidationError:
        decision = DecisionSpec()
    n_trials = data.get("n_trials")
    direction = data.get("direction", "maximize")
    problems = cross_check(
        n_trials=n_trials if isinstance(n_trials, int) and n_trials >= 1 else None,
        direction=direction if direction in ("maximize", "minimize") else "maximize",
        fixed=fixed or {},
        params=params,
        decision=decision,
    )
    return [SpecIssue(path, message) for path, message in problems]


def _unknown_key_message(loc: list[str]) -> str:
    key, parent = loc[-1], tuple(loc[:-1])
    model = _SECTIONS.get(parent)
    if model is None and len(parent) == 2 and parent[0] == "param_ranges":
        model = ParamSpec
    if key in _KEY_HINTS and parent == ():
        return f"unknown key; {_KEY_HINTS[key]}"
    allowed = list(model.model_fields) if model is not None else []
    hint = _suggest(key, allowed)
    where = ".".join(parent) or "the top level"
    return f"unknown key{hint}; allowed in {where}: {', '.join(allowed)}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _dedupe(issues: list[SpecIssue]) -> list[SpecIssue]:
    seen: set[SpecIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return out

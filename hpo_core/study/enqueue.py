"""Queue specific trials in a study (supplementary trials, seed 004), checked against its spec,
and the noise probe: the best configuration again with other seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from hpo_core.errors import SpecError, SpecIssue
from hpo_core.spec import SweepSpec, condition_holds
from hpo_core.study.sampling import ATTR_PROBE_OF, ATTR_PROBE_SEED
from hpo_core.study.study import ATTR_N_TRIALS, SweepStudy
from hpo_core.study.warm import carried_count
from hpo_core.userfiles import InputError, describe, parse_yaml, read_yaml

__all__ = [
    "MAX_TRIAL_FILE_BYTES",
    "NoiseProbe",
    "check_trial_params",
    "enqueue_noise_probe",
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


@dataclass(frozen=True)
class NoiseProbe:
    """What :func:`enqueue_noise_probe` did: the trial whose configuration is repeated, the seeds
    of its probes (queued now or earlier), and how many were queued now."""

    of: int
    seeds: list[int]
    queued: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"of": self.of, "seeds": self.seeds, "queued": self.queued, "note": self.note}


def enqueue_noise_probe(sweep: SweepStudy, k: int | None = None) -> NoiseProbe | None:
    """Queue the best configuration so far ``k`` (default: the spec's ``decision.noise_probe``)
    more times, each with its own seed
    (``fixed.seed`` + 1..k; the trial itself ran with ``fixed.seed``, 0 when unset), so that the
    analysis can measure the objective's seed noise (``decision.noise_probe``, at a checkpoint).

    Probes are ordinary trials: they count against the budget (never queued past it) and run
    before newly sampled ones. Their configuration is the best trial's; only the ``seed``
    parameter the objective receives differs (:func:`hpo_core.study.suggest_params`). A
    configuration is probed once: calling again (a retried gate) queues only missing seeds, and
    a probe that came out best stands for the trial it repeats. None without a completed trial.
    """
    k = sweep.spec.decision.noise_probe if k is None else k
    if k < 1:
        return None
    with sweep.handle.study_lock(sweep.name):  # the budget read and the queueing, together
        trials = sweep.study.get_trials(deepcopy=False)
        sign = 1.0 if sweep.spec.direction == "maximize" else -1.0
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if not complete:
            return None
        best = min(complete, key=lambda t: (-sign * float(t.value or 0.0), t.number))
        origin_number = int(best.user_attrs.get(ATTR_PROBE_OF, best.number))
        origin = next(t for t in trials if t.number == origin_number)
        base = int(sweep.spec.fixed.get("seed", 0))
        taken = {
            t.user_attrs.get(ATTR_PROBE_SEED)
            for t in trials
            if t.user_attrs.get(ATTR_PROBE_OF) == origin_number
        }
        seeds = [base + i for i in range(1, k + 1)]
        missing = [s for s in seeds if s not in taken]
        study_attrs = sweep.study.user_attrs
        budget = int(study_attrs.get(ATTR_N_TRIALS, sweep.spec.n_trials))
        # every trial not FAIL holds or will hold a slot of the budget, but those a warm start
        # carried in (hpo_core.study.warm)
        held = sum(t.state != TrialState.FAIL for t in trials) - carried_count(study_attrs)
        room = max(0, budget - held)
        queue = missing[:room]
        for seed in queue:
            attrs = {ATTR_PROBE_OF: origin_number, ATTR_PROBE_SEED: seed}
            sweep.study.enqueue_trial(dict(origin.params), user_attrs=attrs)
    note = ""
    if len(queue) < len(missing):
        note = f"{len(missing) - len(queue)} seed(s) not queued: {room} slot(s) left in the budget"
    done = [s for s in seeds if s in taken or s in queue]
    return NoiseProbe(origin_number, done, len(queue), note)

"""A study's lineage: the chain of sweeps that refined and warm-started one another.

Each study names its parent in the storage alone: the generation link the workflow layer records
(``sweepflow.generation``: number, parent, parent's spec hash, the chain's first study), else the
record of its warm start (``sweepflow.warm_start``), else its stored spec's ``warm_start.study``,
else the description ``hpo refine`` writes ("Refined from X by hpo refine"). Following the links
back gives the ancestors, following them forward the descendants. Per generation: the spec hash,
what changed from the parent's spec (a diff of the two stored specs, one rule per parameter), the
trials run and carried in, the best and mean of its own trials, and the GPU-hours its own trials
took (when its workers recorded their GPUs) and their trial-hours (run time, on any device).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

from hpo_core.analysis.trials import build_trials_table, gpu_hours
from hpo_core.errors import HpoError
from hpo_core.spec import ParamSpec, SweepSpec, parse_spec
from hpo_core.storage import StorageHandle
from hpo_core.study import ATTR_SPEC_HASH, ATTR_SPEC_YAML, ATTR_WARM_START, load_study

__all__ = [
    "ATTR_GENERATION",
    "Generation",
    "Lineage",
    "SpecChange",
    "render_lineage",
    "spec_changes",
    "study_lineage",
]

# study attr, written by the workflow layer: {number, parent, parent_spec_hash, root}
ATTR_GENERATION = "sweepflow.generation"
_REFINED_FROM = re.compile(r"^Refined from (\S+) by hpo refine")


@dataclass(frozen=True)
class SpecChange:
    """One difference between a parent's spec and its child's."""

    param: str  # a parameter name, or "n_trials"
    rule: str  # fix | unfix | narrow | expand | shift | drop_choice | add_choice | reweight |
    # condition | change | drop | add | fixed | budget
    old: str
    new: str

    def text(self) -> str:
        return f"{self.param} {self.rule} {self.old} -> {self.new}"


@dataclass(frozen=True)
class Generation:
    generation: int  # 1: the first study of the chain found in the storage
    study: str
    parent: str | None  # the study this one was refined or warm-started from
    link: str  # how: "refined", "warm start", "refined, warm start" ("" for the first)
    spec_hash: str | None
    changes: list[SpecChange] = field(default_factory=list)  # from the parent's spec
    new_trials: int = 0  # finished trials the study ran itself
    carried_trials: int = 0  # finished trials a warm start carried in
    best: float | None = None  # over every completed trial, carried ones included
    best_new: float | None = None  # over its own completed trials
    mean_new: float | None = None
    gpu_hours: float | None = None  # its own trials' (None: no worker recorded its GPUs)
    trial_hours: float | None = None  # its own trials' run time, summed (GPU or not)
    note: str = ""  # why figures are missing (a parent not in this storage, a spec that fails)


@dataclass(frozen=True)
class Lineage:
    study: str  # the study asked about
    generations: list[Generation]
    direction: str
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parent(attrs: dict[str, Any], spec: SweepSpec | None) -> tuple[str | None, str]:
    found, how = _linked(attrs, spec)
    link = attrs.get(ATTR_GENERATION)
    if isinstance(link, dict) and link.get("parent"):  # the workflow's record comes first
        return str(link["parent"]), how if found == link["parent"] else "generation"
    return found, how


def _linked(attrs: dict[str, Any], spec: SweepSpec | None) -> tuple[str | None, str]:
    record = attrs.get(ATTR_WARM_START)
    warm = record.get("study") if isinstance(record, dict) else None
    if warm is None and spec is not None and spec.warm_start is not None:
        warm = spec.warm_start.study
    match = _REFINED_FROM.match(spec.description or "") if spec is not None else None
    refined = match.group(1) if match else None
    if warm is not None and refined in (None, warm):
        return str(warm), "refined, warm start" if refined else "warm start"
    if refined is not None:
        return refined, "refined"
    return None, ""


def study_lineage(study_name: str, handle: StorageHandle) -> Lineage:
    """The lineage of ``study_name`` (ancestors, the study, descendants), from the storage."""
    asked = load_study(study_name, handle)  # an unknown or foreign study: its one-line error
    specs: dict[str, SweepSpec | None] = {}
    attrs: dict[str, dict[str, Any]] = {}
    for summary in optuna.get_all_study_summaries(handle.storage, include_best_trial=False):
        text = summary.user_attrs.get(ATTR_SPEC_YAML)
        if text is None:
            continue
        attrs[summary.study_name] = summary.user_attrs
        try:
            specs[summary.study_name] = parse_spec(text, source=f"study {summary.study_name}").spec
        except HpoError:  # stored by an older schema: no links, no diff
            specs[summary.study_name] = None
    parents = {name: _parent(attrs[name], spec) for name, spec in specs.items()}
    chain = [study_name]
    while True:
        parent = parents.get(chain[0], (None, ""))[0]
        if parent is None or parent in chain:
            break
        chain.insert(0, parent)
        if parent not in specs:  # named, but not (or no longer) in this storage
            break
    children: dict[str, list[str]] = {}
    for name, (parent, _) in sorted(parents.items()):
        if parent is not None:
            children.setdefault(parent, []).append(name)
    queue = list(children.get(study_name, []))
    while queue:
        name = queue.pop(0)
        if name not in chain:
            chain.append(name)
            queue += children.get(name, [])
    depth: dict[str, int] = {}
    generations = []
    for name in chain:
        parent, link = parents.get(name, (None, ""))
        depth[name] = (depth[parent] + 1) if parent in depth else 1
        recorded = attrs.get(name, {}).get(ATTR_GENERATION)
        if isinstance(recorded, dict) and isinstance(recorded.get("number"), int):
            depth[name] = recorded["number"]  # counted from the chain's first study
        generations.append(_generation(name, depth[name], parent, link, specs, attrs, handle))
    return Lineage(study_name, generations, asked.spec.direction, asked.spec.metric)


def _generation(
    name: str,
    number: int,
    parent: str | None,
    link: str,
    specs: dict[str, SweepSpec | None],
    attrs: dict[str, dict[str, Any]],
    handle: StorageHandle,
) -> Generation:
    if name not in specs:
        return Generation(number, name, None, "", None, note="not in this storage")
    spec = specs[name]
    stored_hash = attrs[name].get(ATTR_SPEC_HASH)
    short = str(stored_hash)[:12] if stored_hash else None
    if spec is None:
        return Generation(number, name, parent, link, short, note="its stored spec does not load")
    old = specs.get(parent) if parent is not None else None
    changes = spec_changes(old, spec) if old is not None else []
    study = optuna.load_study(study_name=name, storage=handle.storage)
    table = build_trials_table(study.get_trials(deepcopy=False), spec)
    s = table.summary
    own = table.frame[~table.frame["carried"].astype(bool)]
    own_done = own[(own["state"] == "COMPLETE") & own["value"].notna()]["value"]
    best_new = None
    if len(own_done):
        best_new = float(own_done.max() if spec.direction == "maximize" else own_done.min())
    return Generation(
        number,
        name,
        parent,
        link,
        short,
        changes,
        new_trials=s.complete + s.pruned - s.carried,
        carried_trials=s.carried,
        best=s.best_value,
        best_new=best_new,
        mean_new=float(own_done.mean()) if len(own_done) else None,
        gpu_hours=gpu_hours(table),
        trial_hours=float(own["duration_s"].fillna(0.0).sum() / 3600),
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _space(p: ParamSpec) -> str:
    if p.type in ("float", "int"):
        text = f"[{_fmt(p.low)}, {_fmt(p.high)}]" + (" log" if p.log else "")
        return text + (f" step {_fmt(p.step)}" if p.step else "")
    if p.type == "bool":
        return "true|false"
    text = "[" + ", ".join(_fmt(c) for c in p.choices or []) + "]"
    return text + (" weights [" + ", ".join(_fmt(w) for w in p.weights) + "]" if p.weights else "")


def _param_change(name: str, a: ParamSpec, b: ParamSpec) -> SpecChange | None:
    old, new = _space(a), _space(b)
    if a.type != b.type:
        return SpecChange(name, "change", f"{a.type} {old}", f"{b.type} {new}")
    if a.type in ("float", "int") and old != new:
        assert a.low is not None and a.high is not None and b.low is not None
        assert b.high is not None
        if a.low <= b.low and b.high <= a.high:
            rule = "narrow"
        elif b.low <= a.low and a.high <= b.high:
            rule = "expand"
        else:
            rule = "shift"
        return SpecChange(name, rule, old, new)
    if a.type == "categorical" and a.choices != b.choices:
        dropped = [c for c in a.choices or [] if c not in (b.choices or [])]
        rule = "drop_choice" if dropped else "add_choice"
        return SpecChange(name, rule, old, new)
    if old != new:
        return SpecChange(name, "reweight", old, new)
    if a.when != b.when:
        return SpecChange(name, "condition", f"when {a.when}", f"when {b.when}")
    return None


def spec_changes(old: SweepSpec, new: SweepSpec) -> list[SpecChange]:
    """What changed from ``old``'s search space and budget to ``new``'s, one entry per
    parameter (refine's rules, read back from the two specs)."""
    changes: list[SpecChange] = []
    names = [*old.param_ranges, *(n for n in new.param_ranges if n not in old.param_ranges)]
    for name in names:
        a, b = old.param_ranges.get(name), new.param_ranges.get(name)
        if a is not None and b is not None:
            change = _param_change(name, a, b)
            if change is not None:
                changes.append(change)
        elif a is not None:
            fixed = name in new.fixed
            value = _fmt(new.fixed[name]) if fixed else "removed"
            changes.append(SpecChange(name, "fix" if fixed else "drop", _space(a), value))
        elif b is not None:
            before = _fmt(old.fixed[name]) if name in old.fixed else "-"
            changes.append(
                SpecChange(name, "unfix" if name in old.fixed else "add", before, _space(b))
            )
    for name in [*old.fixed, *(n for n in new.fixed if n not in old.fixed)]:
        if name in old.param_ranges or name in new.param_ranges:
            continue
        a_value, b_value = old.fixed.get(name, "-"), new.fixed.get(name, "-")
        if a_value != b_value:
            changes.append(SpecChange(name, "fixed", _fmt(a_value), _fmt(b_value)))
    if old.n_trials != new.n_trials:
        changes.append(SpecChange("n_trials", "budget", str(old.n_trials), str(new.n_trials)))
    return changes


def render_lineage(lineage: Lineage) -> str:
    """The lineage as a text table, one row per generation and its changes below it."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    rows = [
        [
            f"{g.generation}{'*' if g.study == lineage.study else ''}",
            g.study,
            g.spec_hash or "-",
            f"{g.new_trials}+{g.carried_trials}",
            num(g.best),
            num(g.best_new),
            num(g.mean_new),
            "-" if g.gpu_hours is None else f"{g.gpu_hours:.3g}",
            "-" if g.trial_hours is None else f"{g.trial_hours:.3g}",
        ]
        for g in lineage.generations
    ]
    header = ["gen", "study", "spec", "new+carried", "best", "best new", "mean new", "GPU-h"]
    header.append("trial-h")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"lineage of {lineage.study}: {len(rows)} generation(s), {lineage.direction} "
        f"{lineage.metric} (* the study asked about; GPU-h where workers recorded their GPUs, "
        "trial-h: trial run time on any device)",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
    ]
    for g, row in zip(lineage.generations, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if g.note:
            lines.append(f"    ({g.note})")
        if g.parent is not None:
            changed = "; ".join(c.text() for c in g.changes) or "no change to the space"
            lines.append(f"    {g.link} from {g.parent}: {changed}")
    return "\n".join(lines)

"""Files from an analysis: report.md (like the user's quick-reference card), CSVs, JSON, plots.

Every file is written to a temporary name and renamed into place, so a full disk or a crash
leaves the previous report intact, never half a file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from hpo_core.analysis.analyze import SweepAnalysis
from hpo_core.analysis.effects import PairTest, ParamEffect
from hpo_core.analysis.trials import ATTR, carried_and_new
from hpo_core.files import write_atomic

__all__ = [
    "NextSpec",
    "NextSpecStep",
    "analysis_dict",
    "write_report",
]


class NextSpecStep(Protocol):
    """One parameter's change in a next spec, as the report shows it (a refine step)."""

    @property
    def param(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def old(self) -> str: ...
    @property
    def new(self) -> str: ...
    @property
    def evidence(self) -> str: ...


class NextSpec(Protocol):
    """A next spec to write beside the report (a refinement, computed by the caller: the
    analysis reports on it, it does not make it)."""

    @property
    def text(self) -> str: ...
    @property
    def n_trials(self) -> int: ...
    @property
    def steps(self) -> Sequence[NextSpecStep]: ...

_STARS = {"strong": "***", "moderate": "**", "weak": "*", "none": "-"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def analysis_dict(a: SweepAnalysis) -> dict[str, Any]:
    """Everything but the trials table, as plain JSON-able data."""
    data: dict[str, Any] = _jsonable(
        {
            "summary": dataclasses.asdict(a.summary),
            "decision": a.decision.as_dict(),
            "effects": [dataclasses.asdict(e) for e in a.effects],
            "importance": {"method": a.importance_method, "values": a.importance},
            "elites": dataclasses.asdict(a.elites),
            "flags": [dataclasses.asdict(f) for f in a.flags],
            "gaps": [dataclasses.asdict(g) for g in a.gaps],
            "supplementary": [dataclasses.asdict(s) for s in a.supplementary],
            "metrics_by_priority": _priority_table(a)[1],
            "groups": [dataclasses.asdict(g) for g in a.groups],
            "noise": dataclasses.asdict(a.noise) if a.noise is not None else None,
            "timings_s": a.timings,
            "rungs": [dataclasses.asdict(r) for r in a.rungs.rungs] if a.rungs else [],
            "survival": [dataclasses.asdict(sv) for sv in a.survival],
            "tests": [dataclasses.asdict(t) for t in a.tests],
            "importance_rung": a.importance_rung,
        }
    )
    return data


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _priority_table(a: SweepAnalysis, k: int = 10) -> tuple[list[str], list[dict[str, Any]]]:
    """The best ``k`` completed trials with their metrics in the spec's priority order (the
    optimised metric after the priority ones, forbidden ones left out); empty without a
    ``metrics.priority``."""
    spec = a.spec
    if not spec.metrics.priority:
        return [], []
    names = spec.metrics.ordered([*spec.metrics.priority, spec.metric])
    done = a.table.complete.head(k)
    rows = []
    for _, row in done.iterrows():
        item: dict[str, Any] = {"trial": int(row["number"])}
        for name in names:
            column = ATTR + name
            item[name] = row["value"] if name == spec.metric else row.get(column)
        if ATTR + "score_p01" in row and ATTR + "score_p99" in row:
            item["score range p01-p99"] = f"{_num(row[ATTR + 'score_p01'], 3)}-" + _num(
                row[ATTR + "score_p99"], 3
            )
        if ATTR + "score_collapsed" in row:
            item["collapsed"] = "yes" if row[ATTR + "score_collapsed"] else "no"
        for name in spec.analysis.compare:
            item[name] = row.get(a.table.param(name))
        rows.append(_jsonable(item))
    return (list(rows[0]) if rows else ["trial", *names]), rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    return "-" if value is None else str(value)


def _priority_lines(a: SweepAnalysis) -> list[str]:
    headers, rows = _priority_table(a)
    if not headers:
        return []
    m = a.spec.metrics
    lines = [
        "",
        "## Metrics by priority",
        "",
        f"Best trials by {a.spec.metric}, metrics in the spec's priority order "
        f"({', '.join(m.priority)}); precision and recall at score >= {m.threshold:g}.",
        "",
    ]
    return lines + _md_table(headers, [[_cell(r.get(h)) for h in headers] for r in rows])


def _group_lines(a: SweepAnalysis) -> list[str]:
    if not a.groups:
        return []
    lines = ["", "## Groups compared", ""]
    for g in a.groups:
        metric_names = list(g.rows[0].metrics) if g.rows else []
        lines += [
            f"`{g.param}` ({g.test}, p={_num(g.p, 3)}, p_adj={_num(g.p_adjusted, 3)}): "
            f"{g.verdict}.",
            "",
        ]
        pair = {t.other: t for t in g.pairs}
        lines += _md_table(
            [g.param, "trials", f"best {a.spec.metric}", f"mean {a.spec.metric}"]
            + [f"mean {m}" for m in metric_names]
            + ["vs leader p_adj"],
            [
                [repr(r.value), r.n, _num(r.best), _num(r.mean)]
                + [_num(r.metrics.get(m)) for m in metric_names]
                + [
                    "leader"
                    if i == 0
                    else _num(pair[r.value].p_adjusted, 3)
                    if r.value in pair
                    else "-"
                ]
                for i, r in enumerate(g.rows)
            ],
        )
        lines.append("")
    return lines


def _lost_lines(a: SweepAnalysis) -> list[str]:
    s = a.summary
    if not s.lost:
        return []
    limit = a.spec.decision.max_lost_rate
    return [
        "## Lost to the infrastructure",
        "",
        f"{s.lost} trial(s) ({s.lost_rate:.0%} of those that ended) were cut short by their "
        "worker going away, not by their parameters: re-queued with their parameters (up to "
        "worker.stale_trial_retries times; resumed from their last checkpoint, if any) and not "
        "counted in the failure rate"
        + (f" (limit on lost trials: {limit:.0%})" if limit is not None else "")
        + f". Run time lost: {s.hours_lost:.3g} h, {s.gpu_hours_lost:.3g} GPU-hours.",
        "",
        *_md_table(["cause", "trials"], [[kind, n] for kind, n in s.lost_causes.items()]),
        "",
    ]


def _carried_lines(a: SweepAnalysis) -> list[str]:
    split = carried_and_new(a.table)
    if split is None:
        return []
    carried = split[0]
    return [
        "## Warm start",
        "",
        f"{carried.finished} finished trial(s) were carried over from study {carried.source} "
        "(they fit this space): the analysis uses them as evidence, the budget and the "
        "checkpoints count only the new trials.",
        "",
        *_md_table(
            ["trials", "finished", "completed", "pruned", f"best {a.spec.metric}", "mean"],
            [
                [
                    o.origin if o.source is None else f"{o.origin} (from {o.source})",
                    o.finished,
                    o.complete,
                    o.pruned,
                    f"{_num(o.best_value)} (#{o.best_trial})" if o.best_trial is not None else "-",
                    _num(o.mean_value),
                ]
                for o in split
            ],
        ),
        "",
    ]


def _effect_rows(a: SweepAnalysis, kinds: tuple[str, ...]) -> list[ParamEffect]:
    return [e for e in a.effects if e.kind in kinds]


def _within_noise(a: SweepAnalysis, e: ParamEffect) -> bool:
    return a.noise is not None and a.noise.param_within_noise(e.name)


def _note(a: SweepAnalysis, e: ParamEffect) -> str:
    notes = ["underpowered"] if e.underpowered else []
    return ", ".join(notes + (["within noise"] if _within_noise(a, e) else []))


def _noise_lines(a: SweepAnalysis) -> list[str]:
    n = a.noise
    if n is None:
        text = (
            "Not measured: differences smaller than the objective's seed-to-seed spread may read "
            "as effects. Measure it with `decision.noise_probe` (the best configuration run "
            "again with other seeds at a checkpoint) or `champions.seeds` >= 2, or give "
            "`analysis.noise_sd`."
        )
    else:
        runs = f"; {n.n} runs, {n.dof} degrees of freedom" if n.n else ""
        within = ", ".join(f"`{p}`" for p in n.within) or "none"
        text = (
            f"{a.spec.metric} moves by sd {_num(n.sd, 3)} between seeds of one configuration "
            f"({n.source}: {n.detail}{runs}). Effects smaller than that are marked "
            f'"within noise" below, and refine keeps those parameters: {within}.'
        )
    return ["", "## Seed noise", "", text]


def _stars(p: float | None) -> str:
    """Seed 000's stars, on an adjusted p: < 0.01 ***, < 0.10 **, < 0.30 *."""
    if p is None:
        return "-"
    return "***" if p < 0.01 else "**" if p < 0.10 else "*" if p < 0.30 else "-"


def _shape_text(e: ParamEffect, *, stars: bool = True) -> str:
    """"peak near 0.003 (0.002-0.004)", "INCREASE", or the test, with its adjusted p."""
    if e.shape == "peak":
        q = e.p_quadratic_adjusted
        text = f"peak near {e.peak:.3g} ({e.peak_low:.3g}-{e.peak_high:.3g}) p_adj={q:.3g}"
        return text + (f" {_stars(q)}" if stars else "")
    if e.shape in ("increase", "decrease"):
        text = f"{e.shape.upper()} p_adj={e.p_adjusted:.3g}"
    elif e.kind == "numeric":
        text = f"no clear shape (p_adj={_num(e.p_adjusted, 3)})"
    else:
        text = f"{e.test} p_adj={_num(e.p_adjusted, 3)}"
        if e.best_value is not None and e.relative_difference is not None:
            text += f", best {e.best_value!r} by {e.relative_difference:.1%}"
    return text + (f" {_stars(e.p_adjusted)}" if stars else "")


def _pair_text(t: PairTest) -> str:
    text = (
        f"{t.other!r} {_pct(t.relative)} worse (p_adj={_num(t.p_adjusted, 3)}, "
        f"n={t.n_other} vs {t.n_leader})"
    )
    if t.worse_everywhere:
        text += f", worse at every rung it reached ({t.compared_at} rungs)"
    return text


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _arm_finding(a: SweepAnalysis, switch: str) -> str:
    """The arms of a switch, judged where they ran (pruned trials included)."""
    e = a.effect(switch)
    if not e.pairs:
        return f"- **{switch}:** fewer than two arms with trials to compare"
    arm = next(x for x in a.elites.arms if x.switch == switch)
    lead = e.pairs[0].leader
    share = next((x.elite_share for x in arm.arms if x.value == lead), 0.0)
    return (
        f"- **{switch}: {lead!r} leads** at {e.rung} ({share:.0%} of elites): "
        + "; ".join(_pair_text(t) for t in e.pairs)
        + (" - underpowered" if e.underpowered else "")
    )


def _pair_lines(a: SweepAnalysis) -> list[str]:
    rows = [
        [
            f"`{e.name}`",
            repr(t.leader),
            repr(t.other),
            _num(t.difference, 3),
            _pct(t.relative),
            _num(t.p, 3),
            _num(t.p_adjusted, 3),
            f"{t.n_leader}/{t.n_other}",
            t.rung,
            f"{t.worse_at} of {t.compared_at}",
        ]
        for e in a.effects
        for t in e.pairs
    ]
    if not rows:
        return []
    return [
        "",
        "Each choice against the leading one (the evidence behind dropping a choice; worse at: "
        "the rungs where its mean was worse than the leader's, of those where both ran):",
        "",
        *_md_table(
            [
                "parameter",
                "leader",
                "other",
                "difference",
                "relative",
                "p",
                "p_adj",
                "n leader/other",
                "at",
                "worse at",
            ],
            rows,
        ),
    ]


def _survival_lines(a: SweepAnalysis) -> list[str]:
    if not a.survival:
        return []
    rungs = a.rungs.rungs if a.rungs is not None else []
    lines = [
        "",
        "## Rung survival",
        "",
        "How far the trials of each choice, and of each quarter of each numeric range, got: per "
        "rung the trials that reached it (share of the group) and their mean "
        f"{a.spec.metric} there. Rungs: "
        + ", ".join(f"{r.label} ({r.reached} reached, {r.cut} pruned there)" for r in rungs[:-1])
        + f"; final: {rungs[-1].reached} completed." if rungs else "",
    ]
    for sv in a.survival:
        lines += ["", f"`{sv.param}`:", ""]
        lines += _md_table(
            ["group", "trials", *sv.rungs],
            [
                [g.group, g.trials]
                + [
                    f"{k} ({k / g.trials:.0%}), {_num(m, 3)}" if k else "0"
                    for k, m in zip(g.reached, g.means, strict=True)
                ]
                for g in sv.groups
            ],
        )
    return lines


def _test_lines(a: SweepAnalysis) -> list[str]:
    tests = sorted(a.tests, key=lambda t: t.p)
    return [
        "",
        f"## Every test ({len(tests)}, Benjamini-Hochberg adjusted together)",
        "",
        *_md_table(
            ["parameter", "test", "claim", "at", "n", "p", "p_adj"],
            [
                [f"`{t.param}`", t.test, t.claim, t.rung, t.n, _num(t.p, 3), _num(t.p_adjusted, 3)]
                for t in tests
            ],
        ),
    ]


def _render(a: SweepAnalysis, refinement: NextSpec | None, plots: list[str]) -> str:
    s, spec = a.summary, a.spec
    metric = spec.metric
    lines = [
        f"# Sweep report: {s.study_name}",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `hpo analyze` from the study's "
        "storage.",
        "",
        f"**Trials:** {s.complete} completed, {s.pruned} pruned, {s.failed} failed, "
        f"{s.lost} lost, {s.running} running (budget {s.n_trials}) | "
        f"**Best {metric}:** {_num(s.best_value)} "
        f"(trial #{s.best_trial}) | **Mean:** {_num(s.mean_value)}"
        + (f" | **Chance level:** {_num(s.chance_level)}" if s.chance_level is not None else "")
        + (f" | **Pace:** {s.trials_per_hour:.1f} trials/h" if s.trials_per_hour else ""),
        "",
        f"**Decision:** {a.decision.action.upper()} ({a.decision.rule}): {a.decision.message}",
        "",
        *_lost_lines(a),
        *_carried_lines(a),
        "## Critical findings",
        "",
    ]
    findings = [_arm_finding(a, arm.switch) for arm in a.elites.arms]
    converged = [
        p
        for p in a.elites.params.values()
        if p.convergence is not None and p.convergence >= 1.0 and p.n_elites >= 2
    ]
    if converged:
        findings.append(
            "- **100% elite convergence:** "
            + ", ".join(f"`{p.name}={p.top_value!r}`" for p in converged)
        )
    ranked_effects = sorted(
        (e for e in a.effects if e.p_adjusted is not None),
        key=lambda e: min(e.p_adjusted or 1.0, e.p_quadratic_adjusted or 1.0),
    )[:5]
    if ranked_effects:
        findings.append(
            "- **Strongest signals** (adjusted p, stars from it): "
            + "; ".join(
                f"`{e.name}` {_shape_text(e)}"
                + (" (underpowered)" if e.underpowered else "")
                + (" (within noise)" if _within_noise(a, e) else "")
                for e in ranked_effects
            )
        )
    lines += findings or ["(no completed trials yet)"]
    lines += _noise_lines(a)
    lines += _priority_lines(a)
    lines += _group_lines(a)
    lines += [
        "",
        "## Directionality",
        "",
        "Each parameter is tested at the deepest rung where it has enough trials, pruned ones "
        "included (`at`; `final` is the completed trials' values), with the other parameters "
        "held fixed in an additive model where there are enough trials for it (tests `slope`, "
        "`anova`; else on the parameter alone: Spearman, Mann-Whitney, Kruskal-Wallis). p_adj "
        "is Benjamini-Hochberg over every test of the analysis (see *Every test*). rho is "
        "Spearman's, for description.",
        "",
        "Numeric parameters (shape: a peak inside the range from the quadratic term, else the "
        "trend):",
        "",
    ]
    lines += _md_table(
        [
            "parameter",
            "shape",
            "rho",
            "test",
            "p",
            "p_adj",
            "quadratic p_adj",
            "strength",
            "n (pruned)",
            "at",
            "note",
        ],
        [
            [
                f"`{e.name}`",
                _shape_text(e, stars=False),
                _num(e.rho, 2),
                e.test,
                _num(e.p, 3),
                _num(e.p_adjusted, 3),
                _num(e.p_quadratic_adjusted, 3),
                _STARS[e.strength],
                f"{e.n} ({e.n_pruned})",
                e.rung,
                _note(a, e),
            ]
            for e in _effect_rows(a, ("numeric", "ordinal"))
        ],
    )
    lines += ["", "Booleans:", ""]
    lines += _md_table(
        [
            "parameter",
            "mean true",
            "mean false",
            "best",
            "difference",
            "p",
            "p_adj",
            "n true/false",
            "at",
            "note",
        ],
        [
            [f"`{e.name}`", *_bool_cells(e), e.rung, _note(a, e)]
            for e in _effect_rows(a, ("bool",))
        ],
    )
    lines += [
        "",
        "Categoricals (ordinal ones also above; difference and relative: best vs worst, "
        "adjusted for the other parameters where modelled; means are raw):",
        "",
    ]
    lines += _md_table(
        [
            "parameter",
            "best",
            "worst",
            "difference",
            "relative",
            "test",
            "p",
            "p_adj",
            "means (n)",
            "at",
            "note",
        ],
        [
            [
                f"`{e.name}`",
                repr(e.best_value),
                repr(e.worst_value),
                _num(e.difference, 3),
                f"{e.relative_difference:+.1%}" if e.relative_difference is not None else "-",
                e.test,
                _num(e.p, 3),
                _num(e.p_adjusted, 3),
                ", ".join(f"{g.value!r}: {g.mean:.3g} ({g.n})" for g in e.groups),
                e.rung,
                _note(a, e),
            ]
            for e in _effect_rows(a, ("categorical", "ordinal"))
        ],
    )
    lines += _pair_lines(a)
    lines += _survival_lines(a)
    lines += [
        "",
        f"## Importance ({a.importance_method}, at {a.importance_rung})",
        "",
    ]
    lines += _md_table(
        ["parameter", "importance"], [[f"`{k}`", f"{v:.3f}"] for k, v in a.importance.items()]
    )
    lines += [
        "",
        f"## Elites (top {a.elites.quantile:.0%}: {len(a.elites.numbers)} trials, "
        f"{metric} >= {_num(a.elites.threshold)})"
        if spec.direction == "maximize"
        else f"## Elites (top {a.elites.quantile:.0%}: {len(a.elites.numbers)} trials)",
        "",
    ]
    lines += _md_table(
        ["parameter", "elites", "values tried", "convergence / range", "at low", "at high", "hit"],
        [
            [
                f"`{p.name}`",
                p.n_elites,
                p.n_values_tried,
                (
                    f"{p.convergence:.0%} {p.top_value!r}"
                    if p.convergence is not None
                    else f"{_num(p.low)} - {_num(p.high)}"
                    if p.low is not None
                    else "-"
                ),
                f"{p.share_at_low:.0%}" if p.share_at_low is not None else "-",
                f"{p.share_at_high:.0%}" if p.share_at_high is not None else "-",
                p.hit or "",
            ]
            for p in a.elites.params.values()
        ],
    )
    for arm in a.elites.arms:
        lines += ["", f"Arms of `{arm.switch}` (dependents: {', '.join(arm.dependents)}):", ""]
        lines += _md_table(
            ["value", "completed", "pruned", "mean", "best", "elites", "elite share", "note"],
            [
                [
                    repr(x.value),
                    x.trials,
                    x.pruned,
                    _num(x.mean),
                    _num(x.best),
                    x.elites,
                    f"{x.elite_share:.0%}",
                    "underpowered" if x.underpowered else "",
                ]
                for x in arm.arms
            ],
        )
    lines += _test_lines(a)
    lines += ["", "## Red flags", ""]
    lines += [f"- **{f.kind}**: {f.message}. Action: {f.action}." for f in a.flags] or ["(none)"]
    lines += ["", "## Gaps and supplementary trials", ""]
    for g in a.gaps:
        if g.kind == "untried_values":
            lines.append(f"- `{g.param}`: never tried {', '.join(repr(v) for v in g.values)}")
        else:
            lines.append(
                f"- `{g.param}`: untried from {_num(g.low)} to {_num(g.high)} inside the "
                f"elite range ({(g.width or 0):.0%} of the range)"
            )
    if not a.gaps:
        lines.append("(none)")
    if a.supplementary:
        lines += [
            "",
            "Queue them with `hpo enqueue` (each is the best trial with one gap filled):",
            "",
            "```bash",
        ]
        for sup in a.supplementary:
            params = ",".join(f"{k}={v}" for k, v in sup.params.items())
            lines.append(f"hpo enqueue {s.study_name} --params '{params}'   # {sup.reason}")
        lines.append("```")
    if refinement is not None:
        lines += [
            "",
            "## Recommended next config",
            "",
            f"Written to `next_spec.yaml` (suggested n_trials {refinement.n_trials}); the "
            "rules are in docs/reading-a-sweep.md.",
            "",
        ]
        lines += _md_table(
            ["parameter", "rule", "old", "new", "evidence"],
            [[f"`{st.param}`", st.rule, st.old, st.new, st.evidence] for st in refinement.steps],
        )
        lines += ["", "```yaml", _hide_forbidden(refinement.text, spec).rstrip(), "```"]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
    lines += [
        "",
        "## Files",
        "",
        "trials.csv, directionality.csv, importance.csv, elites.csv, "
        "arms.csv, flags.csv, gaps.csv, tests.csv"
        + (", survival.csv" if a.survival else "")
        + ", analysis.json"
        + (", next_spec.yaml, rationale.csv" if refinement is not None else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _hide_forbidden(text: str, spec: Any) -> str:
    """The next spec as shown in the report: the names of forbidden metrics appear in no report
    (next_spec.yaml itself keeps the list, so the next sweep forbids them too)."""
    if not spec.metrics.forbidden:
        return text
    return re.sub(
        r"^(\s*)forbidden:.*$",
        r"\1# forbidden: (the metrics never reported; listed in next_spec.yaml)",
        text,
        flags=re.MULTILINE,
    )


def _bool_cells(e: ParamEffect) -> list[Any]:
    by = {g.value: g for g in e.groups}
    t, f = by.get(True), by.get(False)
    return [
        _num(t.mean if t else None),
        _num(f.mean if f else None),
        repr(e.best_value),
        _num(e.difference, 3),
        _num(e.p, 3),
        _num(e.p_adjusted, 3),
        f"{t.n if t else 0}/{f.n if f else 0}",
    ]


_NESTED = ("groups", "pairs", "curve")  # directionality.csv: these columns hold JSON


def _csv(frame: pd.DataFrame) -> str:
    return str(frame.to_csv(index=False))


def write_report(
    a: SweepAnalysis,
    out_dir: str | Path,
    *,
    refinement: NextSpec | None = None,
    plots: bool = True,
    on_file: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the report files into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    written: list[Path] = []

    def put(name: str, data: str | bytes) -> None:
        written.append(write_atomic(out / name, data))
        if on_file is not None:
            on_file(name)

    put("trials.csv", _csv(a.table.export()))
    put(
        "directionality.csv",
        _csv(
            pd.DataFrame(
                [
                    {k: v for k, v in dataclasses.asdict(e).items() if k not in _NESTED}
                    | {"shape": e.shape}
                    | {k: json.dumps(_jsonable(dataclasses.asdict(e)[k])) for k in _NESTED}
                    for e in a.effects
                ]
            )
        ),
    )
    put(
        "importance.csv",
        _csv(
            pd.DataFrame(
                [{"param": k, "importance": v} for k, v in a.importance.items()],
                columns=["param", "importance"],
            )
        ),
    )
    put("elites.csv", _csv(pd.DataFrame([dataclasses.asdict(p) for p in a.elites.params.values()])))
    put(
        "arms.csv",
        _csv(
            pd.DataFrame(
                [
                    {"switch": arm.switch} | dataclasses.asdict(x)
                    for arm in a.elites.arms
                    for x in arm.arms
                ],
                columns=[
                    "switch",
                    "value",
                    "trials",
                    "mean",
                    "best",
                    "elites",
                    "elite_share",
                    "underpowered",
                    "pruned",
                ],
            )
        ),
    )
    put(
        "flags.csv",
        _csv(
            pd.DataFrame(
                [dataclasses.asdict(f) for f in a.flags],
                columns=["kind", "param", "message", "action"],
            )
        ),
    )
    put(
        "gaps.csv",
        _csv(
            pd.DataFrame(
                [dataclasses.asdict(g) for g in a.gaps],
                columns=["param", "kind", "values", "low", "high", "width"],
            )
        ),
    )
    put(
        "tests.csv",
        _csv(
            pd.DataFrame(
                [dataclasses.asdict(t) for t in a.tests],
                columns=["param", "test", "claim", "rung", "n", "p", "p_adjusted"],
            )
        ),
    )
    if a.survival:
        put(
            "survival.csv",
            _csv(
                pd.DataFrame(
                    [
                        {"param": sv.param, "group": g.group, "trials": g.trials}
                        | {f"reached {r}": k for r, k in zip(sv.rungs, g.reached, strict=True)}
                        | {f"mean {r}": m for r, m in zip(sv.rungs, g.means, strict=True)}
                        for sv in a.survival
                        for g in sv.groups
                    ]
                )
            ),
        )
    put("analysis.json", json.dumps(analysis_dict(a), indent=2, default=str))
    if refinement is not None:
        put("next_spec.yaml", refinement.text)
        put(
            "rationale.csv",
            _csv(
                pd.DataFrame(
                    [
                        {
                            "param": st.param,
                            "rule": st.rule,
                            "old": st.old,
                            "new": st.new,
                            "evidence": st.evidence,
                        }
                        for st in refinement.steps
                    ]
                )
            ),
        )
    plot_files: list[str] = []
    if plots:
        from hpo_core.analysis.plots import draw_plots

        for name, data in draw_plots(a):
            put(name, data)
            plot_files.append(name)
    put("report.md", _render(a, refinement, plot_files))
    return written

"""(j) Planted truth: are the analysis's findings and refine's decisions right, and how often?

Experiment 1, decision rates. For each planted surface of :mod:`hpo_core.testing.planted`
(``static``: no pruner; ``epochs``: reported per epoch under Hyperband), each sampler (TPE,
random), 1 and 2 workers (threads sharing a journal study) and each seed: a sweep of ``--trials``
trials, its analysis and refinement, scored against the surface's truth. Rates are over seeds:
how often each planted effect was found with its shape, each right decision taken, and each wrong
one (a no-effect parameter touched, a near-tie arm dropped, an interior optimum expanded) taken.

Experiment 2, refined vs flat at an equal budget of new trials. Per seed: a TPE sweep of
``--first`` trials on the static surface, refine, then ``--new`` new TPE trials three ways: on the
refined space (warm-started with the first sweep's trials that fit it, when warm starts exist),
on the original space continuing the first study (flat, continued), and on the original space
in a new study (flat, fresh). Measured on the new trials: the best observed value, the true
(noise-free) value of that best trial, and the mean of the top 5.

Writes ``planted.json``, ``planted.md`` and ``planted.png`` to ``--out``; ``make bench`` runs it
(bench/run.py), and ``python -m bench.planted`` alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState
from tqdm import tqdm

from hpo_core.analysis import analyze_study
from hpo_core.files import write_atomic
from hpo_core.refine import refine_spec
from hpo_core.study import SweepStudy, set_budget
from hpo_core.testing.planted import (
    BAD,
    GOOD,
    SURFACES,
    PlantedSurface,
    planted_spec,
    run_planted_sweep,
    score,
    scratch_folder,
)

GROUPS = [("tpe", 1), ("tpe", 2), ("random", 1), ("random", 2)]
TOP_K = 5


def one_run(
    surface: PlantedSurface, sampler: str, workers: int, seed: int, trials: int, tmp: Path
) -> dict[str, Any]:
    name = f"{surface.name}_{sampler}_{workers}w_{seed}"
    began = time.perf_counter()
    spec = planted_spec(surface, name, trials, seed=seed, sampler=sampler)  # type: ignore[arg-type]
    sweep = run_planted_sweep(spec, f"journal://{tmp / name}.journal", workers=workers)
    swept = time.perf_counter()
    analysis = analyze_study(sweep.study, sweep.spec)
    refinement = refine_spec(analysis)
    result = score(analysis, refinement, surface.truth, pruned=surface.pruner["type"] != "none")
    states = [t.state for t in sweep.study.get_trials(deepcopy=False)]
    sweep.handle.dispose()
    return {
        "surface": surface.name,
        "sampler": sampler,
        "workers": workers,
        "seed": seed,
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "sweep_s": round(swept - began, 2),
        "analysis_s": round(time.perf_counter() - swept, 2),
        "checks": result.checks,
        "notes": result.notes,
        "rules": {st.param: st.rule for st in refinement.steps},
    }


def decision_rates(
    seeds: list[int], trials: int, surfaces: list[str], tmp: Path
) -> dict[str, Any]:
    plan = [
        (SURFACES[s], sampler, workers, seed)
        for s in surfaces
        for sampler, workers in GROUPS
        for seed in seeds
    ]
    runs = []
    with tqdm(plan, desc="planted: decision rates", unit="sweep", mininterval=1.0) as bar:
        for surface, sampler, workers, seed in bar:
            bar.set_postfix_str(f"{surface.name} {sampler} {workers}w seed {seed}")
            runs.append(one_run(surface, sampler, workers, seed, trials, tmp))
    return {"seeds": seeds, "trials": trials, "runs": runs, "rates": rates(runs)}


def rates(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per surface and check: how often the event happened (the right thing for a GOOD check,
    the wrong one for a BAD check), per sampler and worker count and over all runs."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        group = f"{run['sampler']}/{run['workers']}"
        for check, passed in run["checks"].items():
            kind, param = check.split(":", 1)
            row = rows.setdefault(
                (run["surface"], check),
                {
                    "surface": run["surface"],
                    "check": check,
                    "kind": kind,
                    "param": param,
                    "bad": kind in BAD,
                    "what": BAD.get(kind) or GOOD[kind],
                    "groups": {},
                    "all": [0, 0],
                },
            )
            happened = (not passed) if kind in BAD else passed
            cell = row["groups"].setdefault(group, [0, 0])
            cell[0] += int(happened)
            cell[1] += 1
            row["all"][0] += int(happened)
            row["all"][1] += 1
    order = list(GOOD) + list(BAD)
    surfaces = list(dict.fromkeys(run["surface"] for run in runs))
    return sorted(
        rows.values(),
        key=lambda r: (surfaces.index(r["surface"]), order.index(r["kind"]), r["param"]),
    )


def _new_trials(sweep: SweepStudy, after: int) -> list[optuna.trial.FrozenTrial]:
    """The completed trials this arm ran: numbered from ``after``, not carried over."""
    return [
        t
        for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.number >= after and t.value is not None and "carried_from" not in t.user_attrs
    ]


def _measure(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    ranked = sorted(trials, key=lambda t: float(t.value or 0.0), reverse=True)
    best = ranked[0]
    return {
        "best": round(float(best.value or 0.0), 4),
        "best_true": round(float(best.user_attrs["true_value"]), 4),
        "top_mean": round(statistics.fmean(float(t.value or 0.0) for t in ranked[:TOP_K]), 4),
        "new_trials": len(trials),
    }


# (arm, baseline) pairs compared: refined + warm start against both flat sweeps, and the two
# halves of that gain: refine alone (cold) against a fresh flat sweep, warm start against cold
COMPARISONS = [
    ("refined_warm", "flat_continued"),
    ("refined_warm", "flat_fresh"),
    ("refined_cold", "flat_fresh"),
    ("refined_warm", "refined_cold"),
]


def refined_vs_flat(seeds: list[int], first: int, new: int, tmp: Path) -> dict[str, Any]:
    surface = SURFACES["static"]
    per_seed = []
    with tqdm(seeds, desc="planted: refined vs flat", unit="seed", mininterval=1.0) as bar:
        for seed in bar:
            url = f"journal://{tmp / f'compare_{seed}'}.journal"
            spec = planted_spec(surface, f"first_{seed}", first, seed=seed, sampler="tpe")
            sweep = run_planted_sweep(spec, url)
            refinement = refine_spec(analyze_study(sweep.study, sweep.spec))
            # the refined spec as refine wrote it, with the new-trial budget and a new sampler
            # seed; the data section (the noise's seed) stays, as a warm start requires
            refined = yaml.safe_load(refinement.text)
            refined["sampler"]["seed"] = 1000 + seed
            refined.update(study_name=f"refined_cold_{seed}", n_trials=new)
            refined.pop("warm_start", None)
            arms = {"refined_cold": run_planted_sweep(yaml.safe_dump(refined), url)}
            refined.update(study_name=f"refined_warm_{seed}", warm_start={"study": sweep.name})
            arms["refined_warm"] = run_planted_sweep(yaml.safe_dump(refined), url)
            flat = planted_spec(
                surface, f"flat_{seed}", new, seed=seed, sampler="tpe", sampler_seed=1000 + seed
            )
            arms["flat_fresh"] = run_planted_sweep(flat, url)
            set_budget(sweep, first + new)
            arms["flat_continued"] = run_planted_sweep(sweep.name, url)
            after = {"flat_continued": first}
            row: dict[str, Any] = {
                "seed": seed,
                "rules": {st.param: st.rule for st in refinement.steps},
                "carried": sum(
                    "carried_from" in t.user_attrs
                    for t in arms["refined_warm"].study.get_trials(deepcopy=False)
                ),
            }
            for arm, study in arms.items():
                row[arm] = _measure(_new_trials(study, after.get(arm, 0)))
                study.handle.dispose()
            sweep.handle.dispose()
            per_seed.append(row)
    summary = {}
    for arm, baseline in COMPARISONS:
        for metric in ("best", "best_true", "top_mean"):
            gains = [r[arm][metric] - r[baseline][metric] for r in per_seed]
            summary[f"{arm}.{baseline}.{metric}"] = {
                "wins": sum(g > 0 for g in gains),
                "seeds": len(gains),
                "mean_gain": round(statistics.fmean(gains), 4),
                "gains": [round(g, 4) for g in gains],
            }
    return {"first": first, "new": new, "per_seed": per_seed, "summary": summary}


def planted_bench(
    *,
    seeds: int = 8,
    trials: int = 80,
    compare_seeds: int = 8,
    first: int = 60,
    new: int = 30,
    surfaces: tuple[str, ...] = ("static", "epochs"),
) -> dict[str, Any]:
    logging.getLogger("hpo_core").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    began = time.perf_counter()
    with scratch_folder() as tmp:
        decisions = decision_rates(list(range(seeds)), trials, list(surfaces), tmp)
        compare = refined_vs_flat(list(range(compare_seeds)), first, new, tmp)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "command": "python -m bench.planted",
        "seconds": round(time.perf_counter() - began, 1),
        "decisions": decisions,
        "compare": compare,
    }


def _cell(cell: list[int] | None) -> str:
    return "-" if not cell else f"{cell[0]}/{cell[1]}"


def render(results: dict[str, Any]) -> list[str]:
    p = results.get("planted")
    if not p:
        return []
    d = p["decisions"]
    lines = [
        "",
        f"Planted truth ({len(d['seeds'])} seeds x {d['trials']} trials per sweep; "
        f"{p['seconds']:.0f} s in all). Each cell: runs where it happened / runs. "
        "Rows marked (never) must be 0.",
    ]
    for surface in dict.fromkeys(r["surface"] for r in d["rates"]):
        lines += [
            "",
            f"| {surface}: check | " + " | ".join(f"{s} {w}w" for s, w in GROUPS) + " | all |",
            "|---|" + "---|" * (len(GROUPS) + 1),
        ]
        for r in (r for r in d["rates"] if r["surface"] == surface):
            label = f"{r['param']}: {r['what']}" + (" (never)" if r["bad"] else "")
            cells = [_cell(r["groups"].get(f"{s}/{w}")) for s, w in GROUPS]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {_cell(r['all'])} |")
    c = p["compare"]
    carried = [r["carried"] for r in c["per_seed"]]
    lines += [
        "",
        f"Refined vs flat, {c['new']} new TPE trials each after a {c['first']}-trial TPE sweep, "
        f"{len(c['per_seed'])} seeds; the warm start carried {min(carried)}-{max(carried)} "
        "trials. Gains are on the new trials (carried ones left out), arm minus baseline:",
        "",
        "| arm vs baseline | metric | arm wins | mean gain | gain per seed |",
        "|---|---|---|---|---|",
    ]
    names = {"best": "best value", "best_true": "true value of the best", "top_mean": "top-5 mean"}
    for key, s in c["summary"].items():
        arm, baseline, metric = key.split(".")
        lines.append(
            f"| {arm.replace('_', ' ')} vs {baseline.replace('_', ' ')} | {names[metric]} | "
            f"{s['wins']}/{s['seeds']} | {s['mean_gain']:+.4f} | "
            f"{', '.join(f'{g:+.3f}' for g in s['gains'])} |"
        )
    wrong = [
        (run, check, note)
        for run in d["runs"]
        for check, note in run["notes"].items()
        if check.split(":")[0] in BAD
    ]
    if wrong:
        lines += ["", "Rows marked (never) that happened (surface, sampler, workers, seed):"]
        lines += [
            f"- {run['surface']} {run['sampler']} {run['workers']}w seed {run['seed']}, "
            f"{check}: {note}"
            for run, check, note in wrong
        ]
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = results["planted"]
    surfaces = list(dict.fromkeys(r["surface"] for r in p["decisions"]["rates"]))
    fig, axes = plt.subplots(1, len(surfaces) + 1, figsize=(6 * (len(surfaces) + 1), 7))
    for ax, surface in zip(axes, surfaces, strict=False):
        rows = [r for r in p["decisions"]["rates"] if r["surface"] == surface][::-1]
        values = [r["all"][0] / r["all"][1] for r in rows]
        colors = ["tab:red" if r["bad"] else "tab:green" for r in rows]
        ax.barh(range(len(rows)), values, color=colors)
        ax.set_yticks(range(len(rows)), [f"{r['param']}: {r['kind']}" for r in rows], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of runs (green: should be 1, red: should be 0)")
        ax.set_title(f"{surface}: {len(p['decisions']['seeds'])} seeds x 4 groups")
    ax = axes[-1]
    per_seed = p["compare"]["per_seed"]
    for offset, baseline in ((-0.2, "flat_continued"), (0.2, "flat_fresh")):
        gains = [r["refined_warm"]["best_true"] - r[baseline]["best_true"] for r in per_seed]
        ax.bar([r["seed"] + offset for r in per_seed], gains, width=0.4, label=f"vs {baseline}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("seed")
    ax.set_ylabel("refined + warm start - flat: true value of the best new trial")
    ax.set_title(f"refined vs flat, {p['compare']['new']} new trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    write_atomic(out / "planted.json", json.dumps(results["planted"], indent=2))
    write_atomic(out / "planted.md", "\n".join(render(results)).lstrip() + "\n")
    plot(results, out / "planted.png")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.planted", description=__doc__)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--compare-seeds", type=int, default=8)
    parser.add_argument("--first", type=int, default=60)
    parser.add_argument("--new", type=int, default=30)
    parser.add_argument("--surfaces", default="static,epochs")
    args = parser.parse_args()
    results = {
        "planted": planted_bench(
            seeds=args.seeds,
            trials=args.trials,
            compare_seeds=args.compare_seeds,
            first=args.first,
            new=args.new,
            surfaces=tuple(args.surfaces.split(",")),
        )
    }
    out = Path(args.out)
    write(results, out)
    print("\n".join(render(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

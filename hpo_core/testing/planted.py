"""Planted truth: instant objectives whose true effects are known, and a scorer that holds a
sweep's analysis and refinement to that truth.

Each :class:`PlantedSurface` has a search space, the objective that evaluates it (referenced from
a spec as ``hpo_core.testing.planted:<function>``) and its :class:`Truth`: per parameter, the
shape of its real effect and the decision refine must (or must never) take. :func:`score` turns an
analysis and its refinement into named pass/fail checks, so that the tests
(tests/analysis/test_planted.py) and the harness (bench/planted.py) measure the same thing.

The surfaces (values around 0.6, best about 0.9; Gaussian noise of sd ``data.sd``, 0.01):

- ``lr`` (log, 1e-4..1e-1): an interior optimum at 3e-3, -0.12 per squared decade away: must be
  reported as a peak and narrowed around it, never expanded;
- ``width`` (0.5..2.0): +0.08 per unit, so the optimum lies beyond the upper bound: expanded up;
- ``use_bn``: true is worth +0.05 (fixing it to true is right, to false wrong);
- ``optimizer``: ``sgd`` is 0.10 worse (clearly bad: dropped); ``adamw`` and ``rmsprop`` tie;
- ``encoder``: a weighted choice (``conv`` 90%, ``mlp`` 10%) where ``mlp`` is 0.015 (about 2%)
  worse: a near tie that must never be dropped;
- ``act``, ``dropout``, ``wd`` (log): no effect at all: never fixed, narrowed or expanded.

``planted_epochs`` reports the same surface per epoch (9 epochs, under Hyperband): every
configuration climbs to its final value, and ``sgd`` climbs slower from further down, so it is
pruned at the first rung it meets; the analysis must judge it from its pruned trials.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from hpo_core.objectives import TrialContext

if TYPE_CHECKING:
    from hpo_core.analysis import ParamEffect, SweepAnalysis
    from hpo_core.refine import Refinement
    from hpo_core.study import SweepStudy
    from hpo_core.worker import WorkerReport

__all__ = [
    "EPOCHS",
    "SURFACES",
    "PlantedScore",
    "PlantedSurface",
    "Truth",
    "planted_epochs",
    "planted_spec",
    "planted_surface",
    "planted_value",
    "run_planted_sweep",
    "score",
    "scratch_folder",
]

EPOCHS = 9  # planted_epochs: Hyperband's rungs fall at epochs 1, 3 and 9
LR_OPTIMUM = 3e-3

Shape = Literal["increase", "decrease", "peak", "none"]
Decision = Literal["expand_high", "expand_low", "narrow", "keep", "drop", "fix_or_keep"]


@dataclass(frozen=True)
class Truth:
    """What a parameter really does, and what refine must conclude from it."""

    shape: Shape  # numeric: the true shape; categorical/bool: "none" unless the choices differ
    decision: Decision  # the right decision ("keep": nothing may be fixed, narrowed or expanded)
    optimum: float | None = None  # peak: where the true optimum lies
    best: Any = None  # bool/categorical: the best value (fixing any other is wrong)
    bad: tuple[Any, ...] = ()  # choices clearly worse: to be dropped (the others tie: kept)
    near_tie: tuple[Any, ...] = ()  # choices barely worse (weighted, few trials): never dropped


SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "width": {"type": "float", "low": 0.5, "high": 2.0},
    "use_bn": {"type": "bool"},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd", "rmsprop"]},
    "encoder": {"type": "categorical", "choices": ["conv", "mlp"], "weights": [0.9, 0.1]},
    "act": {"type": "categorical", "choices": ["relu", "gelu", "silu"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "wd": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True},
}

TRUTH: dict[str, Truth] = {
    "lr": Truth("peak", "narrow", optimum=LR_OPTIMUM),
    "width": Truth("increase", "expand_high"),
    "use_bn": Truth("none", "fix_or_keep", best=True),
    "optimizer": Truth("none", "drop", bad=("sgd",)),
    "encoder": Truth("none", "keep", near_tie=("mlp",)),
    "act": Truth("none", "keep"),
    "dropout": Truth("none", "keep"),
    "wd": Truth("none", "keep"),
}


def planted_value(params: dict[str, Any]) -> float:
    """The noise-free value of a configuration of :data:`SPACE`."""
    value = (
        0.6
        - 0.12 * math.log10(float(params["lr"]) / LR_OPTIMUM) ** 2
        + 0.08 * float(params["width"])
        + (0.05 if params["use_bn"] else 0.0)
        - (0.10 if params["optimizer"] == "sgd" else 0.0)
        - (0.015 if params["encoder"] == "mlp" else 0.0)
    )
    return float(value)


def _noise(ctx: TrialContext, step: int = 0) -> float:
    import numpy as np

    rng = np.random.default_rng([int(ctx.data.get("seed", 0)), ctx.trial.number, step])
    return float(rng.normal(0.0, float(ctx.data.get("sd", 0.01))))


def planted_surface(ctx: TrialContext) -> float:
    """:data:`SPACE`'s planted value plus Gaussian noise (seeded by seed and trial number);
    the noise-free value is kept as the trial's ``true_value`` attribute."""
    value = planted_value(dict(ctx.params))
    ctx.set_attr("true_value", value)
    return value + _noise(ctx)


def planted_epochs(ctx: TrialContext) -> float:
    """The same surface as a training curve over :data:`EPOCHS` epochs, reported each epoch:
    it rises to the planted value; ``sgd`` starts further down and rises slower."""
    final = planted_value(dict(ctx.params))
    ctx.set_attr("true_value", final)
    amp, tau = (0.5, 4.0) if ctx.params["optimizer"] == "sgd" else (0.3, 2.0)
    value = final
    for epoch in range(1, EPOCHS + 1):
        below = amp * (math.exp(-epoch / tau) - math.exp(-EPOCHS / tau))  # 0 at the last epoch
        value = final - below + _noise(ctx, epoch)
        ctx.report(value, epoch)
    return value


@dataclass(frozen=True)
class PlantedSurface:
    name: str
    objective: str  # `package.module:function`
    pruner: dict[str, Any]  # the spec's pruner section
    space: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(SPACE))
    truth: dict[str, Truth] = field(default_factory=lambda: dict(TRUTH))


SURFACES: dict[str, PlantedSurface] = {
    "static": PlantedSurface("static", f"{__name__}:planted_surface", {"type": "none"}),
    "epochs": PlantedSurface(
        "epochs",
        f"{__name__}:planted_epochs",
        {"type": "hyperband", "min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3},
    ),
}


def planted_spec(
    surface: PlantedSurface,
    study_name: str,
    n_trials: int,
    *,
    seed: int,
    sampler: Literal["tpe", "random"] = "tpe",
    sampler_seed: int | None = None,
) -> str:
    """A spec (YAML) sweeping ``surface``, ``seed`` seeding the noise and the sampler (unless
    ``sampler_seed`` is given)."""
    spec = {
        "study_name": study_name,
        "n_trials": n_trials,
        "direction": "maximize",
        "objective": surface.objective,
        "sampler": {
            "type": sampler,
            "seed": seed if sampler_seed is None else sampler_seed,
            "n_startup_trials": 10,
        },
        "pruner": surface.pruner,
        "param_ranges": surface.space,
        "data": {"seed": seed, "sd": 0.01},
        "worker": {"poll_interval": 0.05, "checkpoint_every": None},
    }
    return yaml.safe_dump(spec, sort_keys=False)


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder for planted sweeps' journals, in memory where the system has one: the
    journal fsyncs every record, which on a disk is most of an instant trial's cost."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="planted-", dir=where) as tmp:
        yield Path(tmp)


def run_planted_sweep(spec_or_name: str, storage_url: str, *, workers: int = 1) -> SweepStudy:
    """Run a study to its budget with ``workers`` in-process workers sharing its storage (threads:
    each its own storage handle, taking turns on the study lock like separate processes), and
    return it loaded. ``spec_or_name`` is a spec's YAML or an existing study's name."""
    from hpo_core.spec import parse_spec
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study
    from hpo_core.worker import run_worker

    is_spec = "\n" in spec_or_name
    source: Any = parse_spec(spec_or_name) if is_spec else spec_or_name
    name = source.spec.study_name if is_spec else spec_or_name
    if is_spec and workers > 1:
        # the study exists before the workers race to create it
        run_worker(source, storage_url, max_trials=0, worker_id="planted-create")

    def work(i: int) -> WorkerReport:
        return run_worker(source, storage_url, worker_id=f"planted-{i}-{threading.get_ident()}")

    if workers == 1:
        work(0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for report in pool.map(work, range(workers)):
                assert report.stop_reason, report
    return load_study(name, open_storage(storage_url))


@dataclass
class PlantedScore:
    """Named checks, True where the analysis or refine did the right thing; a failed check keeps
    the refine step's rule and note (or the effect's figures), to report the wrong decision."""

    checks: dict[str, bool] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, passed: bool, note: str) -> None:
        self.checks[name] = passed
        if not passed:
            self.notes[name] = note

    def failed(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


# Check names are "<kind>:<param>"; what each kind checks, in words: the right thing happened
# (GOOD) or the wrong thing did not (BAD, counted in reports as how often it happened).
GOOD = {
    "found": "effect found with the right shape",
    "located": "true optimum inside the reported peak's interval",
    "expanded": "bound expanded where the optimum lies beyond it",
    "narrowed": "interior optimum narrowed around it",
    "dropped_bad": "clearly bad arm dropped (runs where it had 5+ trials)",
    "judged_pruned": "bad arm worse at every rung, pruned trials counted (runs with 5+ of it)",
}
BAD = {
    "touched": "no-effect parameter fixed, narrowed or expanded",
    "false_effect": "no-effect parameter reported as an effect",
    "peak_expanded": "interior optimum expanded",
    "near_tie_dropped": "near-tie weighted arm dropped",
    "tie_dropped": "tied arm dropped beside the bad one",
    "wrong_fix": "fixed to a value that is not the best",
}


def score(
    analysis: SweepAnalysis, refinement: Refinement, truth: dict[str, Truth], *, pruned: bool
) -> PlantedScore:
    """Every check of ``truth`` against an analysis and its refinement. ``pruned``: the sweep ran
    under a pruner, so a bad arm must also be judged with its pruned trials. An effect is found
    where the analysis calls it one: adjusted p below its ``SIGNIFICANT``."""
    from hpo_core.analysis.effects import SIGNIFICANT

    out = PlantedScore()
    steps = {st.param: st for st in refinement.steps}
    new_spec = refinement.spec
    for name, t in truth.items():
        e, st = analysis.effect(name), steps[name]
        old = analysis.spec.param_ranges[name]
        new = new_spec.param_ranges.get(name)
        fixed = name in new_spec.fixed and name not in analysis.spec.fixed
        step_note = f"{st.rule} {st.old} -> {st.new}: {st.evidence}"
        significant = e.p_adjusted is not None and e.p_adjusted < SIGNIFICANT
        if t.shape != "none":
            out.check(f"found:{name}", e.shape == t.shape, _effect_note(e))
            if t.optimum is not None:
                low, high = e.peak_low, e.peak_high
                inside = low is not None and high is not None and low <= t.optimum <= high
                out.check(f"located:{name}", e.shape == "peak" and inside, _effect_note(e))
        elif t.best is not None:
            ok = significant and e.best_value == t.best
            out.check(f"found:{name}", ok, _effect_note(e))
        elif t.bad:
            if _tried(analysis, name, t.bad):
                ok = significant and e.worst_value in t.bad
                out.check(f"found:{name}", ok, _effect_note(e))
        elif not t.near_tie:  # a near tie is a real effect, only too small to act on
            out.check(f"false_effect:{name}", not significant, _effect_note(e))
        if t.decision == "keep" and not t.near_tie:
            out.check(f"touched:{name}", st.rule in ("keep", "reweight"), step_note)
        if t.decision == "expand_high":
            grew = new is not None and float(new.high or 0) > float(old.high or 0)
            out.check(f"expanded:{name}", st.rule == "expand" and grew, step_note)
        if t.decision == "narrow":
            assert t.optimum is not None
            inside = new is not None and float(new.low or 0) < t.optimum < float(new.high or 0)
            out.check(f"narrowed:{name}", st.rule == "narrow" and inside, step_note)
            out.check(f"peak_expanded:{name}", st.rule != "expand", step_note)
        choices = [new_spec.fixed[name]] if fixed else list(new.choices or []) if new else []
        if t.near_tie:
            kept = all(c in choices for c in t.near_tie)
            out.check(f"near_tie_dropped:{name}", kept, step_note)
        if t.bad:
            ties = [c for c in old.choices or [] if c not in t.bad]
            out.check(f"tie_dropped:{name}", all(c in choices for c in ties), step_note)
        if t.bad and _tried(analysis, name, t.bad):
            out.check(f"dropped_bad:{name}", all(c not in choices for c in t.bad), step_note)
            if pruned:  # worse than the leader at every rung, significantly, pruned trials in
                need = analysis.spec.refine.min_arm_trials
                ok = e.n_pruned > 0 and all(
                    any(
                        pair.other == bad
                        and pair.n_other >= need
                        and pair.worse_everywhere
                        and pair.p_adjusted is not None
                        and pair.p_adjusted < SIGNIFICANT
                        for pair in e.pairs
                    )
                    for bad in t.bad
                )
                out.check(f"judged_pruned:{name}", ok, _effect_note(e))
        if t.best is not None:
            right = not fixed or new_spec.fixed[name] == t.best
            out.check(f"wrong_fix:{name}", right, step_note)
    return out


def _tried(analysis: SweepAnalysis, name: str, values: tuple[Any, ...]) -> bool:
    """Whether each of ``values`` ran in enough finished trials (``refine.min_arm_trials``) to
    be judged: TPE may stop sampling a clearly bad arm after a couple of trials, and an arm that
    few trials is rightly kept (underpowered), so its checks do not apply to that sweep."""
    frame = analysis.table.frame
    finished = frame[frame["state"].isin(["COMPLETE", "PRUNED"])][analysis.table.param(name)]
    need = analysis.spec.refine.min_arm_trials
    return all(int((finished == v).sum()) >= need for v in values)


def _effect_note(e: ParamEffect) -> str:
    p = "n/a" if e.p_adjusted is None else f"{e.p_adjusted:.3g}"
    parts = [f"{e.test} p_adj={p}", f"n={e.n}"]
    if e.n_pruned:
        parts.append(f"{e.n_pruned} pruned, at {e.rung}")
    if e.kind == "numeric":
        parts.append(f"shape {e.shape}")
    if e.peak is not None and e.peak_low is not None and e.peak_high is not None:
        parts.append(f"peak {e.peak:.3g} ({e.peak_low:.3g}-{e.peak_high:.3g})")
    if e.best_value is not None:
        parts.append(f"best {e.best_value!r}, worst {e.worst_value!r}")
    if e.underpowered:
        parts.append("underpowered")
    return ", ".join(parts)

"""Pruned trials as evidence: the value of every trial at every rung it reached.

A *rung* is a step (an epoch, as objectives report them) at which the pruner cut trials: the
distinct last steps of the PRUNED trials. Under Hyperband these are its rungs
(``min_resource x reduction_factor^k``); under the median pruner, every step it pruned at (at
most :data:`MAX_RUNGS`, spread evenly). A trial *reached* a rung when it reported that step or a
later one; its value there is the last value it reported at or before the step. The *final* level
is the objective value of the completed trials. COMPLETE and PRUNED trials count alike at every
rung; failed, running and waiting trials are left out.

The levels are what the tests of :mod:`.effects` choose from: each test is judged at the deepest
level where it has the trials it needs, so an arm that the pruner always cuts early is judged
where it ran, with its own trials. :func:`survival` shows how far the trials of each arm and of
each quarter of a numeric range got, and their mean value at each level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial

from hpo_core.analysis.shapes import from_units, units
from hpo_core.analysis.trials import TrialsTable, coerce_value

__all__ = [
    "FINAL",
    "LEVEL",
    "GroupSurvival",
    "Rung",
    "RungView",
    "Survival",
    "rung_view",
    "survival",
]

FINAL = "final"
LEVEL = "level."  # column prefix in RungView.frame: the value of each trial at each level
MAX_RUNGS = 8
BUCKETS = 4  # a numeric parameter's range in survival tables: quarters (log space for log)


@dataclass(frozen=True)
class Rung:
    label: str  # "step 3", or "final"
    step: int | None  # None for the final level
    reached: int  # COMPLETE and PRUNED trials with a value there
    cut: int  # PRUNED trials whose last rung this is


@dataclass
class RungView:
    rungs: list[Rung]  # shallowest first; the final level last
    # the COMPLETE and PRUNED rows of the trials table, with a LEVEL + label column per rung
    frame: pd.DataFrame

    @property
    def levels(self) -> list[str]:
        """Rung labels, deepest (final) first: the order in which tests look for a level."""
        return [r.label for r in reversed(self.rungs)]

    @property
    def pruning(self) -> bool:
        """Whether any trial was pruned (there are rungs besides the final level)."""
        return len(self.rungs) > 1


def _steps(pruned_at: pd.Series) -> list[int]:
    steps = sorted({int(s) for s in pruned_at.dropna()})
    if len(steps) > MAX_RUNGS:
        picks = np.linspace(0, len(steps) - 1, MAX_RUNGS).round().astype(int)
        steps = sorted({steps[i] for i in picks})
    return steps


def rung_view(table: TrialsTable, trials: Sequence[FrozenTrial] = ()) -> RungView:
    """The rung view of ``table``'s trials; ``trials`` give the intermediate values (by number;
    without them, or without pruned trials, only the final level)."""
    frame = table.frame
    ended = frame[frame["state"].isin(["COMPLETE", "PRUNED"])].copy()
    ended[LEVEL + FINAL] = ended["value"].where(ended["state"] == "COMPLETE").astype(float)
    pruned = ended["state"] == "PRUNED"
    steps = _steps(pd.to_numeric(ended.loc[pruned, "last_step"], errors="coerce"))
    rungs: list[Rung] = []
    if steps and len(trials):
        wanted = set(ended["number"].astype(int))
        numbers: list[int] = []
        at: list[int] = []
        values: list[float] = []
        for t in trials:
            if t.number in wanted and t.intermediate_values:
                numbers += [t.number] * len(t.intermediate_values)
                at += t.intermediate_values.keys()
                values += t.intermediate_values.values()
        long = pd.DataFrame({"number": numbers, "step": at, "value": values})
        long = long[np.isfinite(long["value"].astype(float))].sort_values(["number", "step"])
        last = pd.to_numeric(ended["last_step"], errors="coerce")
        for i, step in enumerate(steps):
            upto = long[long["step"] <= step].drop_duplicates("number", keep="last")
            value = ended["number"].map(upto.set_index("number")["value"]).astype(float)
            label = f"step {step}"
            ended[LEVEL + label] = value.where(last >= step)
            following = steps[i + 1] if i + 1 < len(steps) else math.inf
            cut = int((pruned & (last >= step) & (last < following)).sum())
            rungs.append(Rung(label, step, int(ended[LEVEL + label].notna().sum()), cut))
    rungs.append(Rung(FINAL, None, int(ended[LEVEL + FINAL].notna().sum()), 0))
    return RungView(rungs, ended)


@dataclass(frozen=True)
class GroupSurvival:
    group: str  # a choice, or a quarter of a numeric range ("1e-04 - 5.6e-04")
    trials: int  # COMPLETE and PRUNED trials in it
    reached: list[int]  # per rung of the view (shallowest first, final last)
    means: list[float | None]  # the mean value of those trials there


@dataclass(frozen=True)
class Survival:
    param: str
    rungs: list[str]  # labels, shallowest first
    groups: list[GroupSurvival]


def _bucket_labels(param: object, edges: np.ndarray) -> list[str]:
    values = [from_units(param, float(u)) for u in edges]  # type: ignore[arg-type]
    return [f"{values[i]:.3g} - {values[i + 1]:.3g}" for i in range(len(values) - 1)]


def survival(view: RungView, table: TrialsTable) -> list[Survival]:
    """How far the trials of each choice (and each quarter of each numeric range) got; empty
    when nothing was pruned."""
    if not view.pruning:
        return []
    labels = [r.label for r in view.rungs]
    columns = [LEVEL + label for label in labels]
    out = []
    for name, param in table.spec.param_ranges.items():
        column = table.param(name)
        present = view.frame[view.frame[column].notna()]
        if present.empty:
            continue
        if param.type in ("float", "int"):
            u = units(param, present[column].to_numpy(dtype=float))
            index = np.clip((u * BUCKETS).astype(int), 0, BUCKETS - 1)
            names = _bucket_labels(param, np.linspace(0.0, 1.0, BUCKETS + 1))
            key = pd.Series([names[i] for i in index], index=present.index)
            order = names
        else:
            key = present[column].map(lambda v, p=param: repr(coerce_value(p, v)))
            order = [repr(c) for c in (param.choices or [True, False])]
        grouped = present[columns].groupby(key)
        counts, means, sizes = grouped.count(), grouped.mean(), grouped.size()
        groups = [
            GroupSurvival(
                group,
                int(sizes[group]),
                [int(counts.at[group, c]) for c in columns],
                [
                    None if math.isnan(means.at[group, c]) else float(means.at[group, c])
                    for c in columns
                ],
            )
            for group in order
            if group in sizes.index
        ]
        out.append(Survival(name, labels, groups))
    return out

"""The objective's seed noise: how far one configuration's value moves from seed to seed.

Estimated, in this order of preference, from

1. ``probe``: noise probes (``decision.noise_probe``), the best configuration at a checkpoint run
   again with other seeds; the pooled standard deviation of each probed configuration's completed
   runs (the trial and its probes);
2. ``champions``: champion retraining over 2 or more seeds (``champions.seeds``); ``hpo
   champions`` stores the pooled standard deviation of each configuration's scores in the study
   (:data:`ATTR_CHAMPION_NOISE`). Champions train longer than trials, so this is the noise of a
   longer run: used when the sweep itself measured none;
3. ``spec``: the spec's ``analysis.noise_sd``, when the study measured none.

An effect is *within noise* when its size in objective units is smaller than one seed standard
deviation: one retraining of the same configuration moves the value more than choosing the other
value of the parameter does. The report marks such effects and refine keeps those parameters as
they are. A parameter's size is the difference between its best and worst group mean (booleans,
categoricals), or for a numeric parameter the spread of the mean value over the terciles of its
values (which also sees an optimum inside the range, where a rank correlation sees nothing).

A configuration counted once per run would weigh k + 1 times in every test of the analysis:
:func:`collapse_repeats` keeps each configuration once, with the mean of its runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from hpo_core.analysis.effects import ParamEffect
from hpo_core.analysis.trials import ATTR, TrialsTable
from hpo_core.study.sampling import ATTR_PROBE_OF

__all__ = [
    "ATTR_CHAMPION_NOISE",
    "NoiseEstimate",
    "collapse_repeats",
    "effect_sizes",
    "estimate_noise",
    "pooled_sd",
]

# A study attribute `hpo champions` writes: {"sd", "n", "dof", "configs"} over its seeds.
ATTR_CHAMPION_NOISE = "sweepflow.champion_noise"

Source = Literal["probe", "champions", "spec"]


@dataclass(frozen=True)
class NoiseEstimate:
    sd: float  # standard deviation of the objective over seeds, for one configuration
    n: int  # runs it rests on (0 for a value given in the spec)
    source: Source
    detail: str  # where it comes from, in words
    dof: int = 0  # degrees of freedom: runs less one per configuration
    # each tested parameter's effect in objective units (what is compared with ``sd``)
    effects: dict[str, float] = field(default_factory=dict)

    def within_noise(self, difference: float | None) -> bool:
        """Whether a difference in objective units is smaller than the seed noise."""
        return difference is not None and math.isfinite(difference) and abs(difference) < self.sd

    def param_within_noise(self, name: str) -> bool:
        """Whether parameter ``name``'s effect is smaller than the seed noise."""
        return self.within_noise(self.effects.get(name))

    @property
    def within(self) -> list[str]:
        """The parameters whose effect is within noise."""
        return [name for name, size in self.effects.items() if self.within_noise(size)]


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int, int] | None:
    """The pooled standard deviation of groups of repeated runs (each group one configuration):
    (sd, runs, degrees of freedom); None when no group has two runs."""
    used = [list(map(float, g)) for g in groups if len(g) >= 2]
    if not used:
        return None
    dof = sum(len(g) - 1 for g in used)
    squares = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in used)
    return math.sqrt(squares / dof), sum(len(g) for g in used), dof


def _probe_groups(table: TrialsTable) -> dict[int, list[float]]:
    """Completed runs per probed configuration: the trial's and its probes' values."""
    frame = table.frame
    column = ATTR + ATTR_PROBE_OF
    if column not in frame:
        return {}
    of = pd.to_numeric(frame[column], errors="coerce")
    done = (frame["state"] == "COMPLETE") & frame["value"].notna()
    probed = set(of.dropna().astype(int))
    key = of.fillna(frame["number"]).astype(int)
    runs = frame["value"][done & key.isin(probed)].astype(float)
    return {int(k): list(v) for k, v in runs.groupby(key[runs.index])}


def estimate_noise(
    table: TrialsTable, *, champions: Mapping[str, Any] | None = None
) -> NoiseEstimate | None:
    """The seed noise from the study's probes, else ``champions`` (the study's
    :data:`ATTR_CHAMPION_NOISE`), else the spec's ``analysis.noise_sd``; None without any."""
    groups = _probe_groups(table)
    pooled = pooled_sd(list(groups.values()))
    if pooled is not None:
        sd, n, dof = pooled
        probed = ", ".join(f"#{k} ({len(v)} runs)" for k, v in groups.items() if len(v) >= 2)
        return NoiseEstimate(
            sd, n, "probe", f"configurations run again with other seeds: trial {probed}", dof
        )
    if champions:
        try:
            sd, n, dof = float(champions["sd"]), int(champions["n"]), int(champions["dof"])
        except (KeyError, TypeError, ValueError):
            sd = math.nan
        if math.isfinite(sd) and dof >= 1:
            configs = int(champions.get("configs", 0) or 0)
            return NoiseEstimate(
                sd,
                n,
                "champions",
                f"champion retraining: {configs} configuration(s), {n} runs over seeds "
                "(champions train longer than trials)",
                dof,
            )
    given = table.spec.analysis.noise_sd
    if given is not None:
        return NoiseEstimate(given, 0, "spec", "analysis.noise_sd")
    return None


def collapse_repeats(table: TrialsTable) -> TrialsTable:
    """The table with each probed configuration once: its trial with the mean of its completed
    runs, its probes left out (they would weigh the configuration k + 1 times in the tests).
    The summary stays the whole study's: probes are trials of the budget like the others."""
    column = ATTR + ATTR_PROBE_OF
    if column not in table.frame:
        return table
    frame = table.frame
    probes = pd.to_numeric(frame[column], errors="coerce").notna()
    if not probes.any():
        return table
    means = {k: sum(v) / len(v) for k, v in _probe_groups(table).items()}
    kept = frame[~probes].copy()
    done = (kept["state"] == "COMPLETE") & kept["value"].notna() & kept["number"].isin(means)
    kept.loc[done, "value"] = kept.loc[done, "number"].map(means)
    changes: dict[str, Any] = {"frame": kept}
    trials = getattr(table, "trials", None)
    if trials:  # the rows' trials, kept in row order
        numbers = set(kept["number"])
        changes["trials"] = tuple(t for t in trials if t.number in numbers)
    return dataclasses.replace(table, **changes)


def effect_sizes(table: TrialsTable, effects: Sequence[ParamEffect]) -> dict[str, float]:
    """Each tested parameter's effect in objective units: best minus worst group mean, or for a
    numeric parameter the spread of the mean over the terciles of its values."""
    done = table.complete
    sizes: dict[str, float] = {}
    for e in effects:
        if e.p is None:
            continue
        if e.kind != "numeric":
            if e.difference is not None:
                sizes[e.name] = abs(float(e.difference))
            continue
        column = done[table.param(e.name)]
        present = column.notna()
        values, target = column[present].astype(float), done["value"][present].astype(float)
        if len(values) < 6 or values.nunique() < 2:
            continue
        thirds = pd.qcut(values.rank(method="first"), 3, labels=False)
        means = target.groupby(thirds).mean()
        sizes[e.name] = float(means.max() - means.min())
    return sizes

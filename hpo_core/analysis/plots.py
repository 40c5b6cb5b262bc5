"""PNG plots drawn from an analysis: importance, optimisation history, parallel coordinates,
slices of the top parameters, rung survival (when trials were pruned). matplotlib with the Agg
backend (no display needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np

from hpo_core.analysis.analyze import SweepAnalysis
from hpo_core.analysis.elites import to_unit

__all__ = ["draw_plots"]


def _png(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buffer.getvalue()


def _top_params(a: SweepAnalysis, k: int) -> list[str]:
    ranked = list(a.importance) or [e.name for e in a.effects if e.p is not None]
    numeric = [n for n in ranked if a.spec.param_ranges[n].type in ("float", "int")]
    others = [n for n in ranked if n not in numeric]
    return (numeric + others)[:k]


def draw_plots(a: SweepAnalysis) -> Iterator[tuple[str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = a.spec.metric
    maximize = a.spec.direction == "maximize"
    frame = a.table.frame
    done = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()].sort_values("number")

    if a.importance:
        names = list(a.importance)[::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
        ax.barh(names, [a.importance[n] for n in names], color="#4c72b0")
        ax.set_xlabel(f"importance ({a.importance_method}, normalised)")
        ax.set_title("Parameter importance")
        yield "importance.png", _png(fig)

    if len(done):
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.scatter(done["number"], done["value"], s=14, label="completed trial", color="#4c72b0")
        best = done["value"].cummax() if maximize else done["value"].cummin()
        ax.step(done["number"], best, where="post", color="#dd8452", label="best so far")
        if a.summary.chance_level is not None:
            ax.axhline(a.summary.chance_level, ls="--", color="grey", label="chance level")
        ax.set_xlabel("trial number")
        ax.set_ylabel(metric)
        ax.set_title("Optimisation history")
        ax.legend(loc="best", fontsize=8)
        yield "history.png", _png(fig)

    top = _top_params(a, 6)
    numeric_top = [n for n in top if a.spec.param_ranges[n].type in ("float", "int")]
    if len(done) >= 2 and len(numeric_top) >= 2:
        fig, ax = plt.subplots(figsize=(1.6 * len(numeric_top) + 2, 4))
        values = done["value"].to_numpy(dtype=float)
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        cmap = plt.get_cmap("viridis")
        for _, row in done.iterrows():
            ys = []
            for name in numeric_top:
                v = row[a.table.param(name)]
                ok = v is not None and not (isinstance(v, float) and math.isnan(v))
                ys.append(to_unit(a.spec.param_ranges[name], float(v)) if ok else np.nan)
            shade = (row["value"] - lo) / (hi - lo) if hi > lo else 0.5
            ax.plot(
                range(len(numeric_top)),
                ys,
                color=cmap(shade if maximize else 1 - shade),
                alpha=0.6,
                lw=1,
            )
        ax.set_xticks(range(len(numeric_top)), numeric_top, rotation=20)
        ax.set_ylabel("position in range (log for log parameters)")
        ax.set_title(f"Parallel coordinates (colour: {metric}, brighter is better)")
        yield "parallel.png", _png(fig)

    slices = top[:4]
    if len(done) and slices:
        fig, axes = plt.subplots(1, len(slices), figsize=(3.3 * len(slices), 3.2), squeeze=False)
        for ax, name in zip(axes[0], slices, strict=False):
            param = a.spec.param_ranges[name]
            column = done[a.table.param(name)]
            present = column.notna()
            xs = column[present]
            if param.type in ("categorical", "bool"):
                labels = [str(v) for v in xs]
                order = sorted(set(labels))
                ax.scatter([order.index(v) for v in labels], done["value"][present], s=12)
                ax.set_xticks(range(len(order)), order, rotation=20)
            else:
                ax.scatter(xs.astype(float), done["value"][present], s=12)
                if param.log:
                    ax.set_xscale("log")
            ax.set_title(name, fontsize=9)
            ax.set_ylabel(metric, fontsize=8)
        fig.suptitle("Slices of the most important parameters", fontsize=10)
        yield "slices.png", _png(fig)

    survival = _survival_plot(a) if a.survival else None
    if survival is not None:
        yield "rung_survival.png", survival


def _survival_plot(a: SweepAnalysis, k: int = 4) -> bytes | None:
    """Per group of the switches and the most important parameters, the share of its trials
    that reached each rung."""
    import matplotlib.pyplot as plt

    by_name = {sv.param: sv for sv in a.survival}
    switches = [arm.switch for arm in a.elites.arms]
    order = switches + [n for n in _top_params(a, len(by_name)) if n not in switches]
    shown = [by_name[n] for n in order if n in by_name][:k]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.3), squeeze=False)
    for ax, sv in zip(axes[0], shown, strict=False):
        x = range(len(sv.rungs))
        for g in sv.groups:
            ax.plot(
                x, [r / g.trials for r in g.reached], marker="o", label=f"{g.group} ({g.trials})"
            )
        ax.set_xticks(x, sv.rungs, rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(sv.param, fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("share of the group's trials", fontsize=8)
    fig.suptitle("Rung survival: how far each group's trials got", fontsize=10)
    return _png(fig)

"""Plots drawn from computed metrics (compute first, draw later): matplotlib, Agg canvas."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from hpo_core.metrics.binary import ThresholdRow

__all__ = ["precision_recall_vs_threshold"]


def precision_recall_vs_threshold(
    curves: Mapping[str, Sequence[ThresholdRow]],
    *,
    required: float | None = None,
    title: str = "",
) -> bytes:
    """One PNG: precision (solid) and recall (dashed) against the threshold, one colour per named
    model, and a horizontal line at the ``required`` precision when given.

    Where nothing is predicted positive, precision is undefined and its line has a gap.
    """
    # A bare Figure on an Agg canvas: no pyplot, so no global figure registry, no display and
    # nothing to leak or close between calls.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(curves.items()):
        ordered = sorted(rows, key=lambda row: row.threshold)
        thresholds = [row.threshold for row in ordered]
        colour = f"C{i % 10}"
        ax.plot(
            thresholds,
            [row.precision for row in ordered],
            color=colour,
            linestyle="-",
            marker=".",
            label=f"{name} precision",
        )
        ax.plot(
            thresholds,
            [row.recall for row in ordered],
            color=colour,
            linestyle="--",
            label=f"{name} recall",
        )
    if required is not None and math.isfinite(required):
        ax.axhline(
            required, color="grey", linestyle=":", label=f"required precision {required * 100:g}%"
        )
    ax.set_xlabel("threshold")
    ax.set_ylabel("precision / recall")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()

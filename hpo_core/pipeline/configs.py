"""The sweep configs an Airflow deployment offers, and which of them are broken.

``$SWEEPFLOW_CONFIG_DIR`` (default ``configs/hpo`` of the working directory, else of the source
checkout) holds one spec per file. It is code, in effect: a spec names its objective, and
``package.module:function`` imports and runs it, so only spec authors write there.

The DAG file reads this catalog at parse time. One bad file must never take the others down: each
spec is read and validated on its own (:func:`config_catalog`), a broken one is listed with its
one-line error (in ``hpo configs`` and in the ``hpo_sweep`` form's description) and left out,
and every good one still gets its DAG. Validation at parse time is the spec schema only: an
objective given as ``package.module:function`` is not imported here (that runs the spec author's
code, which happens in a task, never in the scheduler's parse loop).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hpo_core.errors import HpoError

__all__ = [
    "DEMO_CONFIG",
    "ENV_CONFIG_DIR",
    "ENV_DEFAULT_CONFIG",
    "ConfigEntry",
    "ScheduledConfig",
    "config_catalog",
    "config_dir",
    "default_config",
    "list_configs",
    "objective_needs_gpu",
    "resolve_config",
    "scheduled_configs",
]

ENV_CONFIG_DIR = "SWEEPFLOW_CONFIG_DIR"
ENV_DEFAULT_CONFIG = "SWEEPFLOW_DEFAULT_CONFIG"  # the form's first choice, set by a deployment
# The form's first choice when the deployment sets none: the built-in synthetic objective needs no
# GPU, no data file and no download, and its 40 trials take about a minute on a laptop CPU, so
# pressing Trigger as offered works on a fresh machine (demo.yaml trains real models on ARC tasks).
DEMO_CONFIG = "demo_synthetic.yaml"
_SOURCE_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hpo"


@dataclass(frozen=True)
class ConfigEntry:
    """One spec file of the config folder, read and validated on its own."""

    file: str  # file name inside the config folder
    error: str | None  # the first problem, one line; None when the spec validates
    study_name: str | None = None
    schedule: str | None = None  # cron or preset, as written in the spec
    objective: str | None = None
    needs_gpu: bool = True  # its objective trains torch models (or is user code: unknown)
    data: str | None = None  # the data file or folder the spec names, as written
    n_trials: int | None = None
    checkpoints: tuple[int, ...] = ()  # decision.checkpoints below n_trials
    max_generations: int | None = None  # next.max_generations with next.auto (else None)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def needs(self) -> str:
        """What a run of it needs from the machine, for a person choosing it in the form."""
        gpu = "a GPU (or Allow CPU)" if self.needs_gpu else "no GPU"
        data = f"the data at {self.data}" if self.data else "no data file"
        return f"{gpu}, {data}; {self.n_trials} trials, objective {self.objective}"

    @property
    def dag_id(self) -> str:
        """``hpo_sweep__<file stem>``: the id of its scheduled DAG, when it has a schedule."""
        return "hpo_sweep__" + re.sub(r"[^A-Za-z0-9_]", "_", Path(self.file).stem)


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
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
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


def config_catalog(folder: Path | None = None) -> list[ConfigEntry]:
    """Every spec file of the folder, each validated in isolation (never raises for a file)."""
    from hpo_core.objectives import load_spec

    folder = (folder or config_dir()).resolve()
    found = []
    try:
        names = list_configs(folder)
    except OSError as exc:  # an unreadable folder offers nothing, and says why in the log
        import logging

        logging.getLogger(__name__).error("config folder %s: cannot be listed (%s)", folder, exc)
        return []
    for name in names:
        try:
            loaded = load_spec(folder / name)
        except HpoError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            found.append(ConfigEntry(name, _without_folder(first, folder)))
            continue
        except Exception as exc:  # the catalog's promise: one file never breaks the listing
            found.append(ConfigEntry(name, f"{name}: cannot be read ({type(exc).__name__})"))
            continue
        spec = loaded.spec
        found.append(
            ConfigEntry(
                name,
                None,
                spec.study_name,
                spec.schedule,
                objective=spec.objective,
                needs_gpu=objective_needs_gpu(spec.objective),
                data=_data_named(spec.data, spec.fixed),
                n_trials=spec.n_trials,
                checkpoints=tuple(c for c in spec.decision.checkpoints if c < spec.n_trials),
                max_generations=spec.next.max_generations if spec.next.auto else None,
            )
        )
    return found


def objective_needs_gpu(objective: str) -> bool:
    """Whether a run of ``objective`` wants a GPU: a registered objective that imports torch
    does, one that does not (the synthetic ones) never will; user code might."""
    from hpo_core.objectives import is_registered, objective_requirements

    return not is_registered(objective) or "torch" in objective_requirements(objective)[0]


def _data_named(data: dict[str, object], fixed: dict[str, object]) -> str | None:
    """The data file or folder a spec names (``data.path``, or the ARC objective's
    ``fixed.data_dir``), as written; None when it reads none or data shipped with a package."""
    for value in (data.get("path"), fixed.get("data_dir")):
        if isinstance(value, str) and value:
            return value
    return None


def default_config(catalog: list[ConfigEntry]) -> str:
    """The form's first choice: ``$SWEEPFLOW_DEFAULT_CONFIG`` when it names a spec that
    validates, else :data:`DEMO_CONFIG`, else the first spec that needs no GPU and no data file,
    else the first that validates ("" when none does)."""
    good = [e for e in catalog if e.ok]
    fallback = next(
        (
            pick[0].file
            for pick in (
                [e for e in good if e.file == DEMO_CONFIG],
                [e for e in good if not e.needs_gpu and not e.data],
                good,
            )
            if pick
        ),
        "",
    )
    chosen = os.environ.get(ENV_DEFAULT_CONFIG, "").strip()
    if chosen and not any(e.file == chosen for e in good):
        import logging

        logging.getLogger(__name__).error(
            "%s=%s: no spec of that name validates in the config folder; the form offers %s",
            ENV_DEFAULT_CONFIG,
            chosen,
            fallback or "nothing",
        )
        return fallback
    return chosen or fallback


def _without_folder(line: str, folder: Path) -> str:
    """Errors name the file as ``<file>: ...`` rather than by its absolute path on the server."""
    return line.replace(f"{folder}{os.sep}", "")


def scheduled_configs(folder: Path | None = None) -> list[ScheduledConfig]:
    """The valid specs with a ``schedule:`` key: each becomes a scheduled DAG."""
    return [
        ScheduledConfig(e.file, e.study_name or "", e.schedule, e.dag_id)
        for e in config_catalog(folder)
        if e.ok and e.schedule
    ]

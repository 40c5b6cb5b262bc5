"""The data a spec trains on, as `hpo data` shows it: the registry names each objective's data
command (the ARC tasks' labels and chance level, a feature table checked or generated)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hpo_core.pipeline.prelaunch import read_spec

if TYPE_CHECKING:
    from hpo_core.objectives import DataReport

__all__ = ["describe_data"]


def describe_data(
    config: str,
    *,
    generate: bool = False,
    rows: int = 20000,
    seed: int = 0,
    on_written: Callable[[int, Path], None] | None = None,
) -> DataReport:
    """The spec's data through its objective's data command; an objective that reads no data
    files is refused, naming those that do (``generate``, ``rows``, ``seed``: the synthetic set
    of an objective that has one, announced through ``on_written``)."""
    from hpo_core.objectives import resolve_data_command

    loaded = read_spec(config)
    command = resolve_data_command(loaded.spec.objective, source=config)
    report: DataReport = command(
        loaded.spec, generate=generate, rows=rows, seed=seed, on_written=on_written
    )
    return report

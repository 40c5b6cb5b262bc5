"""Sweep generations: a finished sweep's refined next spec and its new champion as Airflow asset
events, and the next generation started from the spec refine wrote.

A sweep's finish step records two facts in its study (the storage: the product's own record):
``sweepflow.generation`` (its number in the chain, its parent study and the parent's spec hash,
the chain's first study) and ``sweepflow.next_spec`` (the refined spec's path under
``$HPO_HOME``, its spec hash and the generation it starts). The DAGs publish the same figures as
asset events (:func:`sweep_asset_events`), for people and downstream DAGs to read.

An asset event's extra is *not* trusted: any Airflow user allowed to create asset events through
the REST API can post one with any content. :func:`resolve_next_generation` takes only a study
name from it, reads that study's record, and resolves the spec file from the record alone:
confined to that study's run folders under ``$HPO_HOME``, loaded and validated, with the hash
refine recorded; an event that disagrees with the record, or names a study outside the config's
chain, is refused in one line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_core.errors import HpoError

if TYPE_CHECKING:
    from hpo_core.study import SweepStudy

__all__ = [
    "ATTR_NEXT_SPEC",
    "CHAMPION_ALIAS",
    "NEXT_SPEC_ALIAS",
    "AssetEvent",
    "GenerationLimit",
    "NextGeneration",
    "champion_asset",
    "next_spec_asset",
    "record_generation",
    "record_next_spec",
    "resolve_next_generation",
    "sweep_asset_events",
]

NEXT_SPEC_ALIAS = "sweepflow.next_spec"  # the finish step's outlet: every family's next spec
CHAMPION_ALIAS = "sweepflow.champion"  # the finish step's outlet: every model's new champion
ATTR_NEXT_SPEC = "sweepflow.next_spec"  # study attr: the refined spec its finish step wrote
_STUDY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}$")  # a spec's study_name rule


def next_spec_asset(root: str) -> str:
    """The asset the refined next specs of a chain are events of, by the chain's first study
    (a config's study_name: its ``next: auto`` DAG runs on it, named at parse time)."""
    return f"sweepflow.next_spec.{root}"


def champion_asset(model: str) -> str:
    """The asset a registered model's new champions are events of."""
    return f"sweepflow.champion.{model}"


class GenerationLimit(HpoError):
    """The chain has run ``next.max_generations`` sweeps: nothing more to start (not an error)."""


@dataclass(frozen=True)
class AssetEvent:
    alias: str  # the outlet alias it is emitted through
    asset: str  # the concrete asset's name
    extra: dict[str, Any]  # JSON figures for people and downstream DAGs (never trusted back)


@dataclass(frozen=True)
class NextGeneration:
    """A refined spec resolved from the product's record, ready to run."""

    path: str  # absolute, inside the source study's run folders
    study: str  # the next study's name (the spec's study_name)
    source: str  # the study whose finish step refined it (its warm start)
    generation: int  # the number of the sweep it starts in the chain
    spec_hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _home(home: str | Path | None) -> Path:
    from hpo_core.pipeline.prelaunch import hpo_home

    return Path(home or hpo_home()).resolve()


def _link(attrs: dict[str, Any]) -> dict[str, Any]:
    """A study's recorded generation link (``sweepflow.generation``), or {} without one."""
    from hpo_core.analysis import ATTR_GENERATION

    found = attrs.get(ATTR_GENERATION)
    return found if isinstance(found, dict) else {}


def record_generation(sweep: SweepStudy) -> dict[str, Any]:
    """The study's ``sweepflow.generation`` (written once): its number in the chain, its parent
    (the study it was warm-started from), the parent's spec hash and the chain's first study."""
    from hpo_core.analysis import ATTR_GENERATION
    from hpo_core.study import ATTR_SPEC_HASH, ATTR_WARM_START

    attrs = sweep.study.user_attrs
    if _link(attrs):
        return _link(attrs)
    warm = attrs.get(ATTR_WARM_START)
    parent = warm.get("study") if isinstance(warm, dict) else None
    if parent is None and sweep.spec.warm_start is not None:
        parent = sweep.spec.warm_start.study
    record: dict[str, Any] = {"number": 1, "parent": None, "parent_spec_hash": None}
    record["root"] = sweep.name
    if parent is not None:
        try:
            study_id = sweep.handle.storage.get_study_id_from_name(str(parent))
        except KeyError:  # named, but not in this storage: the chain starts here
            study_id = None
        if study_id is not None:
            up = sweep.handle.storage.get_study_user_attrs(study_id)
            link = _link(up)
            record.update(
                number=int(link.get("number", 1)) + 1,
                parent=str(parent),
                parent_spec_hash=up.get(ATTR_SPEC_HASH),
                root=str(link.get("root") or parent),
            )
    sweep.study.set_user_attr(ATTR_GENERATION, record)
    return record


def record_next_spec(
    sweep: SweepStudy, spec_file: Path, *, home: str | Path | None = None
) -> dict[str, Any] | None:
    """Record the refined spec the finish step wrote (``sweepflow.next_spec``): its path under
    ``$HPO_HOME``, its spec hash, the study and generation it starts. None (nothing recorded)
    when the file is not under ``$HPO_HOME``: no generation can start from it then."""
    from hpo_core.objectives import load_spec

    generation = record_generation(sweep)
    try:
        relative = spec_file.resolve().relative_to(_home(home))
    except ValueError:
        return None
    loaded = load_spec(spec_file)
    record = {
        "study": loaded.spec.study_name,
        "path": relative.as_posix(),
        "spec_hash": loaded.hash,
        "generation": int(generation["number"]) + 1,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    sweep.study.set_user_attr(ATTR_NEXT_SPEC, record)
    return record


def sweep_asset_events(summary: dict[str, Any]) -> list[AssetEvent]:
    """The asset events a finished sweep's summary calls for: its refined next spec (when refine
    wrote one under ``$HPO_HOME``) and its champion (when the alias moved to a new version)."""
    gen = summary.get("generation") or {}
    common = {
        "study": summary["study"],
        "family": gen.get("family"),
        "generation": gen.get("number"),
    }
    events = []
    nxt = gen.get("next")
    if gen.get("root") and nxt:
        events.append(
            AssetEvent(
                NEXT_SPEC_ALIAS,
                next_spec_asset(gen["root"]),
                {
                    **common,
                    "best_value": summary.get("best_value"),
                    "spec_hash": nxt["spec_hash"],
                    "next_spec": nxt["path"],
                    "next_study": nxt["study"],
                },
            )
        )
    champion = summary.get("champion")
    if champion and champion.get("promoted"):
        events.append(
            AssetEvent(
                CHAMPION_ALIAS,
                champion_asset(str(champion["model"])),
                {
                    **common,
                    "model": champion["model"],
                    "version": str(champion["version"]),
                    "mean": champion.get("mean"),
                },
            )
        )
    return events


def resolve_next_generation(
    extra: Any,
    *,
    config: str,
    storage_url: str,
    home: str | Path | None = None,
) -> NextGeneration:
    """The next generation of ``config``'s chain (a spec in the config folder with ``next:
    {auto: true}``), from the asset event's ``extra``: only its study name is read; the spec
    file, its hash and the generation come from that study's own record. Raises
    :class:`GenerationLimit` when the chain is complete, :class:`HpoError` (one line) when the
    event does not match the record or the file is not the one refine wrote."""
    from hpo_core.errors import StudyError
    from hpo_core.objectives import load_spec, require_objective_spec
    from hpo_core.pipeline.configs import resolve_config
    from hpo_core.storage import open_storage
    from hpo_core.study import load_study

    root = load_spec(resolve_config(config)).spec
    if not root.next.auto:
        raise HpoError(f"{config}: next.auto: is not set; set `next: {{auto: true}}` to chain")
    study = extra.get("study") if isinstance(extra, dict) else None
    if not isinstance(study, str) or not _STUDY.match(study):
        raise HpoError(
            f"asset event: extra.study: names no study ({study!r:.60}); refused (only a "
            "sweep's finish step posts the refined-spec event)"
        )
    handle = open_storage(storage_url, create=False)
    try:
        try:
            source = load_study(study, handle)
        except StudyError:
            raise HpoError(f"asset event: extra.study: no study {study!r}; refused") from None
        attrs = source.study.user_attrs
        chain_root = _link(attrs).get("root") or study
        if chain_root != root.study_name:
            raise HpoError(
                f"asset event: study {study!r} is not in the chain of {config} (which starts at "
                f"{root.study_name!r}); refused"
            )
        record = attrs.get(ATTR_NEXT_SPEC)
        if not isinstance(record, dict):
            raise HpoError(f"asset event: study {study!r} recorded no next spec; refused")
        for key, field in (("spec_hash", "spec_hash"), ("path", "next_spec")):
            if extra.get(field) != record.get(key):
                raise HpoError(
                    f"asset event: extra.{field}: differs from what study {study!r}'s finish "
                    "step recorded; refused (the spec is read from the study's record only)"
                )
        number = int(record["generation"])
        if number > root.next.max_generations:
            raise GenerationLimit(
                f"{config}: next.max_generations: {root.next.max_generations} sweeps have run "
                f"(last {study!r}); raise it to go on"
            )
        path = _confined(str(record["path"]), study, _home(home))
        loaded = load_spec(path)
        require_objective_spec(loaded.spec, source=loaded.source)
        if loaded.hash != record["spec_hash"]:
            raise HpoError(
                f"{record['path']}: changed since refine wrote it (spec hash "
                f"{loaded.hash[:12]}, recorded {str(record['spec_hash'])[:12]}); refused"
            )
        warm = loaded.spec.warm_start.study if loaded.spec.warm_start else None
        if warm != study:
            raise HpoError(f"{record['path']}: does not continue study {study!r}; refused")
        return NextGeneration(str(path), loaded.spec.study_name, study, number, loaded.hash)
    finally:
        handle.dispose()


def _confined(relative: str, study: str, home: Path) -> Path:
    """``$HPO_HOME/<relative>``, refused unless it resolves (links followed) to a file inside
    ``$HPO_HOME/runs/<study>/``: the run folders the study's own finish steps write."""
    folder = (home / "runs" / study).resolve()
    path = (home / relative).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HpoError(
            f"next spec {relative!r}: not a file in study {study!r}'s run folders under "
            "$HPO_HOME; refused"
        )
    return path

"""The sweep spec: the YAML a user writes, validated into a :class:`SweepSpec`."""

from __future__ import annotations

from hpo_core.spec.loader import LoadedSpec, find_url_passwords, load_spec, parse_spec, spec_hash
from hpo_core.spec.model import (
    AnalysisSpec,
    ChampionsSpec,
    DecisionSpec,
    HardLimit,
    MetricsSpec,
    ParamSpec,
    ParamType,
    PrunerSpec,
    RefineSpec,
    SamplerSpec,
    SweepSpec,
    WorkerSpec,
    condition_holds,
)
from hpo_core.spec.summary import (
    SpecSummary,
    count_discrete_combinations,
    render_summary,
    summarize_spec,
)

__all__ = [
    "AnalysisSpec",
    "ChampionsSpec",
    "DecisionSpec",
    "HardLimit",
    "LoadedSpec",
    "MetricsSpec",
    "ParamSpec",
    "ParamType",
    "PrunerSpec",
    "RefineSpec",
    "SamplerSpec",
    "SpecSummary",
    "SweepSpec",
    "WorkerSpec",
    "condition_holds",
    "count_discrete_combinations",
    "find_url_passwords",
    "load_spec",
    "parse_spec",
    "render_summary",
    "spec_hash",
    "summarize_spec",
]

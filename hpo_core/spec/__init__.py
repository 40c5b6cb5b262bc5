"""The sweep spec: the YAML a user writes, validated into a :class:`SweepSpec`."""

from __future__ import annotations

from hpo_core.spec.loader import (
    MAX_SPEC_BYTES,
    LoadedSpec,
    find_url_passwords,
    load_decision,
    load_spec,
    parse_spec,
    spec_hash,
)
from hpo_core.spec.model import (
    MAX_CHOICES,
    MAX_TRIALS,
    AnalysisSpec,
    ChampionsSpec,
    DecisionSpec,
    HardLimit,
    MetricsSpec,
    NextSpec,
    ParamSpec,
    ParamType,
    PrunerSpec,
    RefineSpec,
    SamplerSpec,
    SweepSpec,
    WarmStartSpec,
    WorkerSpec,
    condition_holds,
)
from hpo_core.spec.schedule import SCHEDULE_PRESETS, schedule_problem
from hpo_core.spec.summary import (
    SpecSummary,
    count_discrete_combinations,
    render_summary,
    summarize_spec,
)

__all__ = [
    "MAX_CHOICES",
    "MAX_SPEC_BYTES",
    "MAX_TRIALS",
    "SCHEDULE_PRESETS",
    "AnalysisSpec",
    "ChampionsSpec",
    "DecisionSpec",
    "HardLimit",
    "LoadedSpec",
    "MetricsSpec",
    "NextSpec",
    "ParamSpec",
    "ParamType",
    "PrunerSpec",
    "RefineSpec",
    "SamplerSpec",
    "SpecSummary",
    "SweepSpec",
    "WarmStartSpec",
    "WorkerSpec",
    "condition_holds",
    "count_discrete_combinations",
    "find_url_passwords",
    "load_decision",
    "load_spec",
    "parse_spec",
    "render_summary",
    "schedule_problem",
    "spec_hash",
    "summarize_spec",
]

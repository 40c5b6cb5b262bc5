"""Reading a sweep: the trials table, directionality, importance, elites, flags, gaps, decisions.

Everything returns typed results computed from the study alone; reports and plots
(:mod:`hpo_core.analysis.report`) are drawn from those results.
"""

from __future__ import annotations

from hpo_core.analysis.analyze import SweepAnalysis, analyze_study
from hpo_core.analysis.compare import ComparisonRow, compare_analyses
from hpo_core.analysis.decide import ATTR_DECISION, ATTR_DECISIONS, Decision, decide
from hpo_core.analysis.effects import (
    GroupStat,
    HypothesisTest,
    ParamEffect,
    directionality,
    hypothesis_tests,
    param_kind,
)
from hpo_core.analysis.elites import (
    ArmComparison,
    ArmStat,
    EliteParam,
    Elites,
    elite_analysis,
    to_unit,
)
from hpo_core.analysis.flags import (
    Gap,
    RedFlag,
    SupplementaryTrial,
    find_gaps,
    red_flags,
    supplementary_trials,
)
from hpo_core.analysis.groups import GroupComparison, GroupRow, PairTest, compare_groups
from hpo_core.analysis.importance import param_importance
from hpo_core.analysis.lineage import (
    ATTR_GENERATION,
    Generation,
    Lineage,
    SpecChange,
    render_lineage,
    spec_changes,
    study_lineage,
)
from hpo_core.analysis.noise import NoiseEstimate, collapse_repeats, estimate_noise
from hpo_core.analysis.replay import Replay, render_replay, replay_decision
from hpo_core.analysis.rungs import GroupSurvival, Rung, RungView, Survival, rung_view, survival
from hpo_core.analysis.trials import (
    SweepSummary,
    TrialOrigin,
    TrialsTable,
    build_trials_table,
    carried_and_new,
    gpu_hours,
)

__all__ = [
    "ATTR_DECISION",
    "ATTR_DECISIONS",
    "ATTR_GENERATION",
    "ArmComparison",
    "ArmStat",
    "ComparisonRow",
    "Decision",
    "EliteParam",
    "Elites",
    "Gap",
    "Generation",
    "GroupComparison",
    "GroupRow",
    "GroupStat",
    "GroupSurvival",
    "HypothesisTest",
    "Lineage",
    "NoiseEstimate",
    "PairTest",
    "ParamEffect",
    "RedFlag",
    "Replay",
    "Rung",
    "RungView",
    "SpecChange",
    "SupplementaryTrial",
    "Survival",
    "SweepAnalysis",
    "SweepSummary",
    "TrialOrigin",
    "TrialsTable",
    "analyze_study",
    "build_trials_table",
    "carried_and_new",
    "collapse_repeats",
    "compare_analyses",
    "compare_groups",
    "decide",
    "directionality",
    "elite_analysis",
    "estimate_noise",
    "find_gaps",
    "gpu_hours",
    "hypothesis_tests",
    "param_importance",
    "param_kind",
    "red_flags",
    "render_lineage",
    "render_replay",
    "replay_decision",
    "rung_view",
    "spec_changes",
    "study_lineage",
    "supplementary_trials",
    "survival",
    "to_unit",
]

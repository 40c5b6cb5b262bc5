"""Champions: the top configurations retrained for longer, logged and registered in MLflow."""

from __future__ import annotations

from hpo_core.champions.champions import (
    ALIAS,
    ChampionResult,
    ChampionRun,
    family_name,
    promote,
    train_champions,
)
from hpo_core.champions.compare import (
    ChampionComparison,
    ChampionRow,
    compare_champions,
    format_table,
    write_comparison,
)

__all__ = [
    "ALIAS",
    "ChampionComparison",
    "ChampionResult",
    "ChampionRow",
    "ChampionRun",
    "compare_champions",
    "family_name",
    "format_table",
    "promote",
    "train_champions",
    "write_comparison",
]

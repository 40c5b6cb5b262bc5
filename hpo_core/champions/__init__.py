"""Champions: the top configurations retrained for longer, logged and registered in MLflow."""

from __future__ import annotations

from hpo_core.champions.champions import (
    ALIAS,
    ChampionResult,
    ChampionRun,
    Evidence,
    Promotion,
    RegistryLock,
    approve_champion,
    family_name,
    promote_champion,
    record_approval,
    record_version,
    registry_lock_name,
    train_champions,
)
from hpo_core.champions.compare import (
    ChampionComparison,
    ChampionRow,
    compare_champions,
    format_table,
    write_comparison,
)
from hpo_core.champions.promotion import PromotionRule, PromotionTest, promotion_test
from hpo_core.champions.weights import (
    load_champion_weights,
    model_config,
    rebuild_model,
    save_champion_weights,
)

__all__ = [
    "ALIAS",
    "ChampionComparison",
    "ChampionResult",
    "ChampionRow",
    "ChampionRun",
    "Evidence",
    "Promotion",
    "PromotionRule",
    "PromotionTest",
    "RegistryLock",
    "approve_champion",
    "compare_champions",
    "family_name",
    "format_table",
    "load_champion_weights",
    "model_config",
    "promote_champion",
    "promotion_test",
    "rebuild_model",
    "record_approval",
    "record_version",
    "registry_lock_name",
    "save_champion_weights",
    "train_champions",
    "write_comparison",
]

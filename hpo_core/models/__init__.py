"""Models the sweeps tune; one file per family.

``budget`` (parameter counts and sizing to a budget) needs no torch, so ``hpo validate`` can check
budgets; the model classes import torch and are loaded on first use.
"""

from __future__ import annotations

from hpo_core._lazy import lazy_getattr
from hpo_core.models.budget import (
    BudgetError,
    MLPConfig,
    TransformerConfig,
    mlp_param_count,
    parse_budget,
    size_mlp,
    size_transformer,
    transformer_budget_problem,
    transformer_param_count,
)

_LAZY = {
    "ArcModelConfig": "hpo_core.models.classifier",
    "TaskClassifier": "hpo_core.models.classifier",
    "build_task_classifier": "hpo_core.models.classifier",
    "count_parameters": "hpo_core.models.classifier",
    "CNNConfig": "hpo_core.models.cnn",
    "TaskEncoderCNN": "hpo_core.models.cnn",
    "ContextConfig": "hpo_core.models.context",
    "ContextEncoder": "hpo_core.models.context",
    "HeadConfig": "hpo_core.models.head",
    "PrototypeHead": "hpo_core.models.head",
    "MLPClassifier": "hpo_core.models.binary",
    "TransformerClassifier": "hpo_core.models.binary",
    "build_binary_model": "hpo_core.models.binary",
}

__all__ = [
    "ArcModelConfig",
    "BudgetError",
    "CNNConfig",
    "ContextConfig",
    "ContextEncoder",
    "HeadConfig",
    "MLPClassifier",
    "MLPConfig",
    "PrototypeHead",
    "TaskClassifier",
    "TaskEncoderCNN",
    "TransformerClassifier",
    "TransformerConfig",
    "build_binary_model",
    "build_task_classifier",
    "count_parameters",
    "mlp_param_count",
    "parse_budget",
    "size_mlp",
    "size_transformer",
    "transformer_budget_problem",
    "transformer_param_count",
]


__getattr__ = lazy_getattr(__name__, _LAZY)

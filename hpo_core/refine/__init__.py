"""The refined next search space, from a sweep's analysis (``hpo refine``)."""

from __future__ import annotations

from hpo_core.refine.refine import Refinement, RefineStep, refine_spec

__all__ = ["RefineStep", "Refinement", "refine_spec"]

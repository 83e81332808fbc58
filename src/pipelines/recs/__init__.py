"""Transformer recommender: SASRec-style model, full-ranking evaluation, top-K recommendations.

Importing this package is cheap (no torch, no pandas): the task's recipe is `pipelines.recs.task.RecsRecipe`.
"""

from pipelines.recs.config import MODEL_NAME, RecsConfig

__all__ = ["MODEL_NAME", "RecsConfig"]

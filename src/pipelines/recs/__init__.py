"""Transformer recommender: SASRec-style model, full-ranking evaluation, champion/challenger, top-K.

Importing this package is cheap (no torch, no pandas): the DAG's task imports it, and `run` pulls the
heavy modules in only when the task executes.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pipelines.recs.config import MODEL_NAME, RecsConfig

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pipelines.settings import Settings

__all__ = ["MODEL_NAME", "RecsConfig", "run"]


def run(
    engine: Engine, as_of: dt.date, settings: Settings, config: RecsConfig | None = None, *, force_promote: bool = False
) -> dict[str, object]:
    """Task entry point; see `pipelines.recs.task.run`."""
    from pipelines.recs.task import run as run_task

    return run_task(engine, as_of, settings, config, force_promote=force_promote)

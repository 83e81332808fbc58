"""`generate_ad_creatives` as a recipe of the model-task lifecycle (`pipelines.modeltask`).

Each date trains a candidate generator, warm-started from its parent (the champion of the day before, or
before any generator passed the gate, the newest earlier candidate, so short daily runs add up), judges
it and the parent with one classifier on one held-out split, and the date's champion then generates every
live campaign's creatives. A candidate below the quality gate is registered as rejected and serves nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines import registry
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.modeltask import Candidate, Checkpoint, Context, Served

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipelines.creatives.plan import Campaign

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GanModel:
    """A registered generator's checkpoint in the layout the GAN code reads (`bundle`, `train`)."""

    payload: dict[str, Any]


def gan_payload(checkpoint: Checkpoint) -> dict[str, Any]:
    weights = dict(checkpoint.weights)
    return {
        **{k: weights[k] for k in ("generator", "discriminator", "generator_ema", "opt_g", "opt_d")},
        "classifier": weights["classifier"],
        "spec": dict(checkpoint.model_config["gan"]),
        "classifier_spec": dict(checkpoint.model_config["classifier"]),
        "classes": list(checkpoint.extras["classes"]),
        "data_fingerprint": checkpoint.extras.get("data_fingerprint"),
        "as_of_date": checkpoint.as_of_date,
        "metrics": dict(checkpoint.metrics),
        "train_config": dict(checkpoint.train_config),
    }


class CreativesRecipe:
    model_name = MODEL_NAME

    def __init__(self, config: CreativesConfig) -> None:
        from pipelines.creatives.candidate import promotion_rule

        self.config = config
        self.promotion = promotion_rule(config)

    def read(self, ctx: Context) -> list[Campaign]:
        from pipelines.creatives.plan import live_campaigns

        return live_campaigns(ctx.engine, ctx.as_of)  # first: a malformed headline template fails before training

    def load(self, checkpoint: Checkpoint) -> GanModel:
        return GanModel(gan_payload(checkpoint))

    def fit(self, data: list[Campaign], parent: Served[GanModel] | None, ctx: Context) -> Candidate | str:
        from pipelines.creatives.candidate import fit_candidate

        if self.config.train_steps == 0:
            return "train_steps is 0"
        return fit_candidate(ctx, self.config, parent)

    def write(
        self, conn: Connection, data: list[Campaign], served: Served[GanModel] | None, ctx: Context
    ) -> dict[str, Any]:
        import torch

        from pipelines.creatives.bundle import load_bundle
        from pipelines.creatives.publish import publish_creatives

        out_dir = registry.artifact_dir(ctx.settings.artifacts, MODEL_NAME, ctx.as_of) / "creatives"
        if not data:
            log.info("no campaign is live on %s", ctx.as_of)
        with torch.inference_mode():
            bundle = None if served is None else load_bundle(served.model.payload, served.version, ctx.device)
            summary = publish_creatives(ctx.engine, conn, ctx.as_of, data, bundle, self.config, out_dir, ctx.device)
        summary["live_campaigns"] = [c.campaign_id for c in data]
        if served is None:
            summary["reason"] = _why_none(ctx)
        return summary


def _why_none(ctx: Context) -> str:
    """What is true for a date no generator serves: none has passed the gate yet, or the first to pass
    was trained after this date (a backfill before it)."""
    import sqlalchemy as sa

    with ctx.engine.connect() as conn:
        first = conn.execute(
            sa.text("SELECT min(as_of_date) FROM model_promotions WHERE model_name = :m AND revoked_at IS NULL"),
            {"m": MODEL_NAME},
        ).scalar()
    if first is None:
        return "no generator has passed the quality gate yet"
    return (
        f"no generator had passed the quality gate by {ctx.as_of}: the first champion was trained on {first}, "
        "after this date, and a date is never served by a model trained on later data"
    )

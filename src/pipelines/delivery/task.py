"""The delivery plan: run on business date D, it decides how D + 1's traffic is shared over creatives.

For each segment and banner placement, the personalised arm's shares come from Thompson sampling
(`pipelines.delivery.policy.thompson_shares`) over the approved creatives of campaigns live on D + 1,
from the clicks and impressions each creative had in that segment and placement up to D (counted in
PostgreSQL, outcomes attributed as in `pipelines.effects.attribution`). Each creative's Beta prior has
its category's click rate at the placement as its mean. The holdout arm is shown every creative of the
segment's campaigns uniformly, and in the recommendation slot the most popular items instead of the
recommendations. Random draws are seeded from (D, segment, placement): a rerun writes the same plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.compute import derive_seed
from pipelines.delivery.arms import HOLDOUT, PERSONALISED
from pipelines.delivery.config import RECS_PLACEMENT, DeliveryConfig
from pipelines.delivery.policy import beta_posterior, group_rates, thompson_shares, uniform_shares
from pipelines.effects.attribution import LOGGED, logged_params
from pipelines.warehouse.partitions import replace_partition
from pipelines.warehouse.reads import day_bounds

log = logging.getLogger(__name__)

TABLE = "delivery_plan"
COLUMNS = [
    "serve_date",
    "segment_id",
    "placement",
    "arm",
    "campaign_id",
    "creative_id",
    "item_id",
    "position",
    "policy",
    "policy_version",
    "share",
    "propensity",
    "clicks",
    "impressions",
    "prior_mean",
    "posterior_mean",
    "frequency_cap",
]
EVERY_SEGMENT = -1

# The approved creatives of D whose campaign is live on D + 1, one row per creative and banner placement.
_CANDIDATES = """
SELECT a.creative_id, a.campaign_id, a.segment_id, a.category, 'banner_' || a.banner_size AS placement
FROM approved_creatives AS a JOIN campaigns AS c USING (campaign_id)
WHERE a.campaign_date = :as_of AND c.start_date <= :serve AND c.end_date >= :serve
ORDER BY placement, a.segment_id, a.creative_id
"""

_EVIDENCE = f"""
WITH {LOGGED}
SELECT creative_id, segment_id, placement, count(*) AS impressions, count(*) FILTER (WHERE clicked) AS clicks
FROM logged WHERE creative_id IS NOT NULL
GROUP BY creative_id, segment_id, placement
"""

_POPULAR = """
SELECT item_id, count(*) AS n FROM events
WHERE event_ts >= :start AND event_ts < :end AND item_id IS NOT NULL
GROUP BY item_id ORDER BY n DESC, item_id LIMIT :k
"""


def policy_version(config: DeliveryConfig) -> str:
    """A short hash of the knobs that shape the shares, so logged impressions name what chose them."""
    knobs = {k: v for k, v in asdict(config).items() if not k.startswith(("hr_", "bootstrap_", "holdout_recs"))}
    return "ts-" + hashlib.sha256(repr(sorted(knobs.items())).encode()).hexdigest()[:10]


def read_candidates(engine: Engine, as_of: dt.date) -> pd.DataFrame:
    serve = as_of + dt.timedelta(days=1)
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(_CANDIDATES), conn, params={"as_of": as_of, "serve": serve})


def read_evidence(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> pd.DataFrame:
    """Clicks and impressions per creative x segment x placement in the history window, summed in SQL."""
    first = as_of - dt.timedelta(days=config.history_days - 1)
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(_EVIDENCE), conn, params=logged_params(config, as_of, first, as_of))


def with_priors(candidates: pd.DataFrame, evidence: pd.DataFrame, config: DeliveryConfig) -> pd.DataFrame:
    """Each candidate with its own clicks and impressions in its segment and placement, and its prior
    mean: its category's pooled click rate at the placement (`group_rates`), shrunk towards the
    placement's click rate over all creatives shown there (else `default_click_rate`)."""
    counts = evidence.set_index(["creative_id", "segment_id", "placement"])[["clicks", "impressions"]]
    out = candidates.join(counts, on=["creative_id", "segment_id", "placement"])
    out[["clicks", "impressions"]] = out[["clicks", "impressions"]].fillna(0).astype(np.int64)
    by_placement = evidence.groupby("placement")[["clicks", "impressions"]].sum()
    prior = np.empty(len(out))
    for placement, rows in out.groupby("placement").indices.items():
        rate = config.default_click_rate
        if placement in by_placement.index and by_placement.loc[placement, "impressions"] > 0:
            # Clipped: a placement without a click yet must still give a proper Beta prior.
            rate = float(
                np.clip(
                    by_placement.loc[placement, "clicks"] / by_placement.loc[placement, "impressions"], 1e-4, 1 - 1e-4
                )
            )
        group = out.iloc[rows]
        prior[rows] = group_rates(
            group["clicks"].to_numpy(),
            group["impressions"].to_numpy(),
            group["category"].to_numpy(),
            rate,
            config.prior_strength,
        )
    return out.assign(prior_mean=prior)


def personalised_rows(candidates: pd.DataFrame, as_of: dt.date, config: DeliveryConfig) -> list[pd.DataFrame]:
    """Thompson shares per segment x placement over the segment's own creatives."""
    frames = []
    for (placement, segment_id), group in candidates.groupby(["placement", "segment_id"], sort=True):
        group = group.sort_values("creative_id")
        clicks = group["clicks"].to_numpy(np.int64)
        shown = group["impressions"].to_numpy(np.int64)
        prior = group["prior_mean"].to_numpy(np.float64)
        rng = np.random.default_rng(derive_seed("delivery", as_of, segment_id, placement))
        floor = min(config.min_share, 1.0 / len(group))
        shares = thompson_shares(clicks, shown, prior, config.prior_strength, floor, rng, draws=config.thompson_draws)
        alpha, beta = beta_posterior(clicks, shown, prior, config.prior_strength)
        frames.append(
            group.assign(arm=PERSONALISED, policy="thompson", share=shares, posterior_mean=alpha / (alpha + beta))
        )
    return frames


def holdout_rows(candidates: pd.DataFrame) -> list[pd.DataFrame]:
    """Per segment x placement: every creative of the campaigns the segment has creatives of, uniformly."""
    frames = []
    for (placement, segment_id), group in candidates.groupby(["placement", "segment_id"], sort=True):
        pool = candidates[(candidates["placement"] == placement) & candidates["campaign_id"].isin(group["campaign_id"])]
        pool = pool.drop_duplicates("creative_id").sort_values("creative_id")
        frames.append(
            pool.assign(
                segment_id=segment_id,
                arm=HOLDOUT,
                policy="uniform",
                share=uniform_shares(len(pool)),
                clicks=None,
                impressions=None,
                prior_mean=np.nan,
            )
        )
    return frames


def recs_rows(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> pd.DataFrame:
    """The recommendation slot: personalised users get their `recommendations`, the holdout the most
    popular items of the history window, in popularity order (a fixed list: every propensity is 1)."""
    start, _ = day_bounds(as_of - dt.timedelta(days=config.history_days - 1))
    _, end = day_bounds(as_of)
    with engine.connect() as conn:
        popular = conn.execute(
            sa.text(_POPULAR), {"start": start, "end": end, "k": config.holdout_recs_items}
        ).fetchall()
    rows = [{"arm": PERSONALISED, "policy": "recommendations", "item_id": None, "position": None}]
    rows += [
        {"arm": HOLDOUT, "policy": "popularity", "item_id": int(r.item_id), "position": rank}
        for rank, r in enumerate(popular, start=1)
    ]
    return pd.DataFrame(rows).assign(segment_id=EVERY_SEGMENT, placement=RECS_PLACEMENT, share=1.0)


def build_plan(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> pd.DataFrame:
    candidates = read_candidates(engine, as_of)
    evidence = read_evidence(engine, as_of, config)
    frames: list[pd.DataFrame] = []
    if not candidates.empty:
        candidates = with_priors(candidates, evidence, config)
        frames += personalised_rows(candidates, as_of, config)
        frames += holdout_rows(candidates)
    frames.append(recs_rows(engine, as_of, config))
    plan = pd.concat(frames, ignore_index=True)
    plan = plan.assign(
        serve_date=as_of + dt.timedelta(days=1),
        policy_version=policy_version(config),
        propensity=plan["share"],
        frequency_cap=config.frequency_cap,
    )
    for column in COLUMNS:
        if column not in plan.columns:
            plan[column] = None
    plan = plan[COLUMNS].sort_values(["placement", "segment_id", "arm", "creative_id", "position"], ignore_index=True)
    for column in ("campaign_id", "item_id", "position", "clicks", "impressions"):
        plan[column] = plan[column].astype("Int64")
    return plan


def plan_delivery(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> dict[str, Any]:
    """Write D's `delivery_plan` partition (for serve date D + 1) and return a small summary."""
    started = time.perf_counter()
    plan = build_plan(engine, as_of, config)
    written = replace_partition(engine, TABLE, as_of, plan)
    banners = plan[plan["placement"] != RECS_PLACEMENT]
    summary: dict[str, Any] = {
        "as_of_date": as_of.isoformat(),
        "serve_date": (as_of + dt.timedelta(days=1)).isoformat(),
        "policy_version": policy_version(config),
        "rows": written,
        "creatives": int(banners["creative_id"].nunique()),
        "segments": int(banners["segment_id"].nunique()),
        "placements": sorted(banners["placement"].unique().tolist()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if banners.empty:
        summary["reason"] = f"no approved creatives of {as_of} belong to a campaign live on {summary['serve_date']}"
    log.info("delivery plan for %s: %s", summary["serve_date"], summary)
    return summary

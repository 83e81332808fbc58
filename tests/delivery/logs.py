"""A tiny closed loop on the web sample: approved creatives, and a day of impressions and outcomes.

Each user sees `per_user` banners and `recs` recommendation slots a day. The personalised arm draws its
creatives with the plan written for that day (uniformly when there is none), the holdout arm (every
fourth user) uniformly over the campaign's creatives; the shares drawn with are the logged propensities.
Shoes banners are clicked with probability 0.3, bags with 0.1; every other click converts with revenue 20.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.partitions import copy_frames, replace_partition
from tests.web.sample import SampleSpec

TRUE_CTR = {"shoes": 0.3, "bags": 0.1}
PLACEMENT = "banner_300x250"


def approve_all(engine: Engine, spec: SampleSpec, days: int = 1) -> None:
    """Approve the sample's creatives and render them again (the same rows) for the next `days` - 1 dates."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ad_creatives SET status = 'approved', reviewed_by = 'test', reviewed_at = now()"))
        frame = pd.read_sql_query(
            sa.text("SELECT * FROM ad_creatives WHERE campaign_date = :d"), conn, params={"d": spec.day}
        ).drop(columns=["campaign_date", "creative_id"])
    for offset in range(1, days):
        replace_partition(
            engine, "ad_creatives", spec.day + dt.timedelta(days=offset), frame, date_column="campaign_date"
        )


def _shares(engine: Engine, day: dt.date, segment: int, arm: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            sa.text(
                """SELECT creative_id, campaign_id, share FROM delivery_plan
                   WHERE serve_date = :d AND segment_id = :s AND placement = :p AND arm = :a ORDER BY creative_id"""
            ),
            conn,
            params={"d": day, "s": segment, "p": PLACEMENT, "a": arm},
        )


def _uniform(engine: Engine, day: dt.date, segment: int | None) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            sa.text(
                """SELECT DISTINCT creative_id, campaign_id FROM approved_creatives
                   WHERE campaign_date = :d AND banner_size = '300x250' AND (:s IS NULL OR segment_id = :s)
                   ORDER BY creative_id"""
            ),
            conn,
            params={"d": day, "s": segment},
        )
    return frame.assign(share=1.0 / len(frame))


def log_day(
    engine: Engine, spec: SampleSpec, day: dt.date, *, per_user: int = 20, recs: int = 3, first_id: int = 0
) -> int:
    """Write `day`'s impressions and outcomes; returns the number of impressions."""
    rng = np.random.default_rng(day.toordinal())
    start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=8)
    rows, outcomes = [], []
    for user in range(1, spec.users + 1):
        segment, arm = user % spec.segments, "holdout" if user % 4 == 0 else "personalised"
        options = _shares(engine, day, segment, arm)
        if options.empty:
            options = _uniform(engine, day, None if arm == "holdout" else segment)
        picks = rng.choice(len(options), size=per_user, p=options["share"] / options["share"].sum())
        for n, pick in enumerate(picks):
            chosen = options.iloc[pick]
            ts = start + pd.Timedelta(minutes=user * 7 + n)
            rows.append(
                {
                    "user_id": user,
                    "ts": ts,
                    "placement": PLACEMENT,
                    "position": 1,
                    "creative_id": chosen["creative_id"],
                    "item_id": None,
                    "campaign_id": int(chosen["campaign_id"]),
                    "segment_id": segment,
                    "policy": "test",
                    "policy_version": "v",
                    "propensity": float(chosen["share"]),
                    "arm": arm,
                }
            )
        for position in range(1, recs + 1):
            ts = start + pd.Timedelta(minutes=user * 7 + per_user + position)
            rows.append(
                {
                    "user_id": user,
                    "ts": ts,
                    "placement": "recs_home",
                    "position": position,
                    "creative_id": None,
                    "item_id": position,
                    "campaign_id": None,
                    "segment_id": segment,
                    "policy": "recommendations",
                    "policy_version": "v",
                    "propensity": 1.0,
                    "arm": arm,
                }
            )
    impressions = pd.DataFrame(rows).assign(batch_date=day, impression_id=np.arange(first_id, first_id + len(rows)))
    category = impressions["creative_id"].str.extract(r"-(shoes|bags)-")[0]
    rate = category.map(TRUE_CTR).fillna(0.2).to_numpy()
    clicked = rng.random(len(impressions)) < rate
    converted = clicked & (rng.random(len(impressions)) < 0.5)
    for row, conv in zip(impressions[clicked].itertuples(), converted[clicked], strict=True):
        click = row.ts + pd.Timedelta(minutes=2)
        outcomes.append(
            {
                "batch_date": day,
                "impression_id": row.impression_id,
                "click_ts": click,
                "conversion_ts": click + pd.Timedelta(minutes=5) if conv else None,
                "revenue": 20.0 if conv else None,
            }
        )
    with engine.begin() as conn:
        copy_frames(conn, "impressions", impressions)
        copy_frames(conn, "outcomes", pd.DataFrame(outcomes))
    return len(impressions)

"""The simulated ad server against real PostgreSQL: it follows the plan, logs what the gate accepts, and a
rerun of a date loads identical rows instead of adding them twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.delivery.arms import holdout_mask
from pipelines.delivery.config import DeliveryConfig
from pipelines.quality import run_quality_gate
from pipelines.sources import TINY_STORE, load_synthetic_store
from pipelines.sources.response import ResponseModel
from pipelines.sources.simulate import NO_PLAN_VERSION, simulate_day
from pipelines.sources.world import build_world
from pipelines.warehouse.partitions import replace_partition
from pipelines.warehouse.reads import read_frame
from tests.web.sample import _embedding_literal

pytestmark = pytest.mark.integration

DAY = TINY_STORE.end_date
PREVIOUS = DAY - dt.timedelta(days=1)
STORE = dataclasses.replace(TINY_STORE, sessions_per_user_day=1.0)  # ~200 visitors a day
DELIVERY = DeliveryConfig(holdout_share=0.3)  # both arms well populated among a few hundred visitors
CAMPAIGN = 99
SHARES = {"personalised": (0.7, 0.3), "holdout": (0.5, 0.5)}


def _creative_id(rank: int, category: str) -> str:
    return f"c{CAMPAIGN}-s-1-{category}-r{rank}"  # segment -1: every segment


def _loop_outputs(engine: Engine, *, plan: bool) -> None:
    """What the run of PREVIOUS wrote: two approved creatives, profiles for half the users, each user's top
    three recommendations and, when `plan`, a delivery plan for DAY."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """INSERT INTO campaigns (campaign_id, name, start_date, end_date, categories, headline_template)
                   VALUES (:c, 'loop', :start, :end, '{Dress,Bag}', '{category} sale')"""
            ),
            {"c": CAMPAIGN, "start": PREVIOUS, "end": DAY},
        )
    creatives = pd.DataFrame(
        {
            "segment_id": -1,
            "category": ["Dress", "Bag"],
            "rank": [1, 2],
            "banner_size": "300x250",
            "image": [b"png", b"png"],
            "headline": "sale",
            "scores": [{}, {}],
            "status": "approved",
            "reviewed_by": "ana",
            "model_version": "creative_gan-1",
        }
    )
    replace_partition(
        engine, "ad_creatives", PREVIOUS, creatives, date_column="campaign_date", scope={"campaign_id": CAMPAIGN}
    )
    users = np.arange(1, STORE.users + 1)
    profiles = pd.DataFrame(
        {
            "user_id": users[::2],
            "embedding": _embedding_literal(engine),
            "segment_id": 0,
            "top_categories": [{}] * len(users[::2]),
        }
    )
    replace_partition(engine, "user_profiles", PREVIOUS, profiles.assign(model_version="vae-1"))
    recs = pd.DataFrame(
        {
            "user_id": np.repeat(users, 3),
            "rank": np.tile([1, 2, 3], len(users)),
            "item_id": (np.repeat(users, 3) * 7 + np.tile([1, 2, 3], len(users))) % STORE.items + 1,
            "score": 1.0,
            "source": "model",
            "model_version": "sasrec-1",
        }
    )
    replace_partition(engine, "recommendations", PREVIOUS, recs)
    if plan:
        rows = [
            {
                "serve_date": DAY,
                "segment_id": -1,
                "placement": "banner_300x250",
                "arm": arm,
                "campaign_id": CAMPAIGN,
                "creative_id": _creative_id(rank, category),
                "policy": "thompson" if arm == "personalised" else "uniform",
                "policy_version": "v1",
                "share": share,
                "propensity": share,
                "frequency_cap": 2,
            }
            for arm, shares in SHARES.items()
            for (rank, category), share in zip([(1, "Dress"), (2, "Bag")], shares, strict=True)
        ]
        replace_partition(engine, "delivery_plan", PREVIOUS, pd.DataFrame(rows))


def _logs(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    impressions = read_frame(
        engine, "SELECT * FROM impressions WHERE batch_date = :d ORDER BY impression_id", {"d": DAY}
    )
    outcomes = read_frame(engine, "SELECT * FROM outcomes WHERE batch_date = :d ORDER BY impression_id", {"d": DAY})
    return impressions, outcomes


@pytest.fixture
def store(engine: Engine) -> Engine:
    load_synthetic_store(engine, STORE, None)
    return engine


def _simulate(engine: Engine, day: dt.date = DAY) -> None:
    world = build_world(STORE)
    simulate_day(engine, world, day, DELIVERY, ResponseModel(world))


def test_a_rerun_of_a_date_loads_the_same_rows_instead_of_adding_them(store: Engine) -> None:
    _loop_outputs(store, plan=True)
    _simulate(store, PREVIOUS)
    before = read_frame(
        store, "SELECT * FROM impressions WHERE batch_date = :d ORDER BY impression_id", {"d": PREVIOUS}
    )
    _simulate(store)
    first = _logs(store)
    _simulate(store)
    again = _logs(store)
    after = read_frame(store, "SELECT * FROM impressions WHERE batch_date = :d ORDER BY impression_id", {"d": PREVIOUS})
    pd.testing.assert_frame_equal(before, after)  # another date's batch is left alone
    assert len(before) and not set(before["impression_id"]) & set(first[0]["impression_id"])
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    impressions, outcomes = first
    assert len(impressions) > 100 and len(outcomes) > 0
    assert impressions["impression_id"].is_unique and outcomes["impression_id"].is_unique


def test_impressions_follow_the_plan_with_its_shares_as_propensities(store: Engine, tmp_path: Path) -> None:
    _loop_outputs(store, plan=True)
    _simulate(store)
    impressions, outcomes = _logs(store)
    banners = impressions[impressions["placement"] == "banner_300x250"]
    holdout = holdout_mask(banners["user_id"].to_numpy(), DELIVERY.holdout_key, DELIVERY.holdout_share)
    assert (banners["arm"] == np.where(holdout, "holdout", "personalised")).all()
    for arm, shares in SHARES.items():
        logged = banners[banners["arm"] == arm].groupby("creative_id")["propensity"].first()
        assert logged.to_dict() == pytest.approx(
            {_creative_id(1, "Dress"): shares[0], _creative_id(2, "Bag"): shares[1]}
        )
    assert banners.groupby("user_id").size().max() <= 2  # the plan's frequency cap
    # users with a profile carry its segment; the others -1
    assert set(banners.loc[banners["user_id"] % 2 == 1, "segment_id"]) == {0}
    assert set(banners.loc[banners["user_id"] % 2 == 0, "segment_id"]) == {-1}
    recs = impressions[impressions["placement"] == "recs_home"]
    assert set(recs["position"]) == {1, 2, 3} and (recs["propensity"] == 1.0).all()
    assert set(recs.loc[recs["arm"] == "personalised", "policy_version"]) == {"sasrec-1"}
    assert set(recs.loc[recs["arm"] == "holdout", "policy"]) == {"popularity"}
    # the day's logs are what the gate accepts: every impressions/outcomes check passes
    report = run_quality_gate(store, DAY, tmp_path)
    delivery = [r for r in report.results if r.table in ("impressions", "outcomes")]
    assert delivery and all(r.success for r in delivery), [r.describe() for r in delivery if not r.success]
    assert outcomes["click_ts"].notna().all()
    converted = outcomes["conversion_ts"].notna()
    assert (outcomes.loc[converted, "revenue"] > 0).all() and outcomes.loc[~converted, "revenue"].isna().all()


def test_without_a_plan_every_approved_creative_of_a_live_campaign_gets_an_equal_share(store: Engine) -> None:
    _loop_outputs(store, plan=False)
    _simulate(store)
    impressions, _ = _logs(store)
    banners = impressions[impressions["placement"] == "banner_300x250"]
    assert set(banners["policy"]) == {"uniform"} and set(banners["policy_version"]) == {NO_PLAN_VERSION}
    assert set(banners["propensity"]) == {0.5}
    assert set(banners["arm"]) == {"personalised", "holdout"}

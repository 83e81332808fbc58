"""The delivery plan on a real warehouse: Thompson shares with a floor, the holdout arm, identical reruns."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.delivery.config import DeliveryConfig
from pipelines.delivery.task import plan_delivery
from tests.delivery.logs import PLACEMENT, approve_all, log_day
from tests.web.sample import SampleSpec, write_sample

pytestmark = pytest.mark.integration

SPEC = SampleSpec()
D = SPEC.day
CONFIG = DeliveryConfig(thompson_draws=2000, min_share=0.05, prior_strength=20.0)


def plan_rows(engine: Engine, day: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            sa.text(
                """SELECT * FROM delivery_plan WHERE as_of_date = :d
                   ORDER BY placement, segment_id, arm, creative_id, position"""
            ),
            conn,
            params={"d": day},
        )


@pytest.fixture
def store(engine: Engine) -> Engine:
    write_sample(engine, SPEC)
    approve_all(engine, SPEC)
    log_day(engine, SPEC, D)
    return engine


def test_shares_sum_to_one_above_the_floor_and_favour_the_better_creative(store: Engine) -> None:
    summary = plan_delivery(store, D, CONFIG)
    plan = plan_rows(store, D)
    assert summary["serve_date"] == (D + dt.timedelta(days=1)).isoformat()
    assert set(plan["serve_date"]) == {D + dt.timedelta(days=1)}
    banners = plan[plan["placement"] != "recs_home"]
    assert set(banners["placement"]) == {PLACEMENT, "banner_728x90"}
    for (_, _, arm), group in banners.groupby(["placement", "segment_id", "arm"]):
        assert group["share"].sum() == pytest.approx(1.0)
        assert (group["share"] >= CONFIG.min_share - 1e-12).all()
        assert (group["propensity"] == group["share"]).all()
        if arm == "holdout":  # every creative of the campaign, uniformly
            assert len(group) == SPEC.segments * 2 and group["share"].nunique() == 1
    personal = banners[(banners["arm"] == "personalised") & (banners["placement"] == PLACEMENT)]
    assert len(personal) == SPEC.segments * 2  # each segment's own two creatives
    # Shoes are clicked three times as often as bags: with ~130 impressions each the posterior knows it.
    for _, group in personal.groupby("segment_id"):
        shoes = group[group["creative_id"].str.contains("-shoes-")]
        assert float(shoes["share"].iloc[0]) > 0.8
        assert int(group["impressions"].sum()) > 0
    assert (plan["frequency_cap"] == CONFIG.frequency_cap).all()
    recs = plan[plan["placement"] == "recs_home"]
    assert list(recs.loc[recs["arm"] == "holdout", "position"]) == list(range(1, len(recs)))


def test_rerun_writes_the_identical_plan(store: Engine) -> None:
    plan_delivery(store, D, CONFIG)
    first = plan_rows(store, D)
    plan_delivery(store, D, CONFIG)
    pd.testing.assert_frame_equal(plan_rows(store, D), first)


def test_outcomes_delivered_after_the_date_do_not_change_its_plan(store: Engine) -> None:
    plan_delivery(store, D, CONFIG)
    first = plan_rows(store, D)
    with store.begin() as conn:  # tomorrow's batch clicks every bags banner shown today
        conn.execute(
            sa.text(
                """INSERT INTO outcomes (batch_date, impression_id, click_ts)
                   SELECT :next, impression_id, ts + interval '1 minute' FROM impressions
                   WHERE batch_date = :d AND creative_id LIKE '%-bags-%'"""
            ),
            {"d": D, "next": D + dt.timedelta(days=1)},
        )
    plan_delivery(store, D, CONFIG)
    pd.testing.assert_frame_equal(plan_rows(store, D), first)


def test_without_approved_creatives_only_the_recommendation_slot_is_planned(engine: Engine) -> None:
    write_sample(engine, SPEC)  # creatives stay pending review
    summary = plan_delivery(engine, D, CONFIG)
    plan = plan_rows(engine, D)
    assert set(plan["placement"]) == {"recs_home"}
    assert "no approved creatives" in summary["reason"]

"""The daily effect report on a real warehouse: rates, lift, recommendations and OPE, identical reruns."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.delivery.config import DeliveryConfig
from pipelines.delivery.task import plan_delivery
from pipelines.effects.task import evaluate_effects
from pipelines.report import build_report, format_report
from tests.delivery.logs import PLACEMENT, approve_all, log_day
from tests.web.sample import SampleSpec, write_sample

pytestmark = pytest.mark.integration

SPEC = SampleSpec()
D = SPEC.day
NEXT = D + dt.timedelta(days=1)
CONFIG = DeliveryConfig(thompson_draws=2000, min_share=0.05, prior_strength=20.0, bootstrap_samples=200)


def report(engine: Engine, day: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            sa.text(
                """SELECT * FROM effect_reports WHERE as_of_date = :d
                   ORDER BY kind, metric, placement, segment_id, creative_id, arm, policy"""
            ),
            conn,
            params={"d": day},
        )


@pytest.fixture
def loop(engine: Engine) -> Engine:
    """Two days of the loop: D logged uniformly, D's plan, D + 1 logged with it, D + 1's plan.

    D's plan keeps 30% for the worse creative (a high floor), so D + 1's plan differs from it."""
    write_sample(engine, SPEC)
    approve_all(engine, SPEC, days=2)
    first = log_day(engine, SPEC, D)
    plan_delivery(engine, D, replace(CONFIG, min_share=0.3))
    log_day(engine, SPEC, NEXT, first_id=first)
    plan_delivery(engine, NEXT, CONFIG)
    return engine


def test_rates_and_lift_come_from_the_logged_counts(loop: Engine) -> None:
    summary = evaluate_effects(loop, NEXT, CONFIG)
    rows = report(loop, NEXT)
    assert summary["rows"] == len(rows) and summary["impressions"] > 0
    with loop.connect() as conn:
        truth = pd.read_sql_query(
            sa.text(
                """SELECT i.creative_id, i.segment_id, i.arm, count(*) AS n, count(o.click_ts) AS clicks
                   FROM impressions AS i LEFT JOIN outcomes AS o USING (impression_id)
                   WHERE i.batch_date = :d AND i.placement = :p GROUP BY 1, 2, 3"""
            ),
            conn,
            params={"d": NEXT, "p": PLACEMENT},
        )
    ctr = rows[(rows["kind"] == "rate") & (rows["metric"] == "ctr") & (rows["placement"] == PLACEMENT)]
    merged = ctr.merge(truth, on=["creative_id", "segment_id", "arm"], suffixes=("", "_true"))
    assert len(merged) == len(truth) > 0
    assert (merged["n"] == merged["n_true"]).all()
    assert merged["value"].to_numpy() == pytest.approx((merged["clicks"] / merged["n_true"]).to_numpy())
    assert ((merged["low"] <= merged["value"]) & (merged["value"] <= merged["high"])).all()
    revenue = rows[rows["metric"] == "revenue_per_impression"]
    assert (revenue["method"] == "bootstrap").all() and (revenue["value"] > 0).any()
    lift = rows[(rows["kind"] == "lift") & (rows["metric"] == "ctr") & (rows["placement"] == PLACEMENT)]
    assert len(lift) == 1 and lift["low"].iloc[0] < lift["value"].iloc[0] < lift["high"].iloc[0]
    recs = rows[rows["kind"] == "recs"].set_index(["metric", "arm"])
    assert recs.loc[("click_rate", "personalised"), "n"] == 30 * 3  # 30 users in the arm, 3 slots each


def test_run_report_shows_click_rate_by_arm_and_lift(loop: Engine) -> None:
    evaluate_effects(loop, NEXT, CONFIG)
    effects = build_report(loop, NEXT)["effects"]
    banner = {e["arm"]: e for e in effects["ctr"] if e["placement"] == PLACEMENT}
    with loop.connect() as conn:
        n = conn.execute(
            sa.text("SELECT count(*) FROM impressions WHERE batch_date = :d AND arm = 'holdout' AND placement = :p"),
            {"d": NEXT, "p": PLACEMENT},
        ).scalar_one()
    assert banner["holdout"]["n"] == n and 0 < banner["holdout"]["value"] < banner["personalised"]["value"]
    (lift,) = (e for e in effects["lift"] if e["placement"] == PLACEMENT)
    expected = banner["personalised"]["value"] / banner["holdout"]["value"] - 1
    assert lift["value"] == pytest.approx(expected)
    text = format_report(build_report(loop, NEXT))
    assert f"lift over holdout, {PLACEMENT}: {expected:+.1%}" in text and "click rate by arm" in text


def test_hit_rate_of_yesterdays_recommendations_against_todays_first_events(loop: Engine) -> None:
    with loop.begin() as conn:  # even users first open their top recommendation, odd users an unlisted item
        conn.execute(
            sa.text(
                """INSERT INTO events (batch_date, event_id, user_id, item_id, event_type, event_ts, price, quantity)
                   SELECT :d, r.user_id, r.user_id,
                          CASE WHEN r.user_id % 2 = 0 THEN r.item_id ELSE 10000 END, 'view', :ts, 9.99, 1
                   FROM recommendations AS r WHERE r.as_of_date = :prev AND r.rank = 1"""
            ),
            {"d": NEXT, "prev": D, "ts": dt.datetime.combine(NEXT, dt.time(9), dt.UTC)},
        )
    evaluate_effects(loop, NEXT, CONFIG)
    rows = report(loop, NEXT)
    hit = rows[(rows["kind"] == "recs") & (rows["metric"] == f"hr@{CONFIG.hr_k}")].iloc[0]
    assert hit["n"] == SPEC.users and hit["value"] == pytest.approx(0.5)
    assert hit["low"] < 0.5 < hit["high"]


def test_ope_of_the_live_plan_on_its_own_logs_is_the_observed_click_rate(loop: Engine) -> None:
    evaluate_effects(loop, NEXT, CONFIG)
    rows = report(loop, NEXT)
    ope = rows[rows["kind"] == "ope"].set_index(["policy", "metric"])
    assert set(ope.index) == {(p, m) for p in ("candidate", "live") for m in ("ips", "snips", "dr")}
    with loop.connect() as conn:
        clicks, n = conn.execute(
            sa.text(
                """SELECT count(o.click_ts), count(*)
                   FROM impressions AS i LEFT JOIN outcomes AS o USING (impression_id)
                   WHERE i.batch_date = :d AND i.arm = 'personalised' AND i.creative_id IS NOT NULL"""
            ),
            {"d": NEXT},
        ).one()
    # D + 1 was served with D's plan: every importance weight is 1, so IPS and SNIPS are the plain mean,
    # and DR adds the reward model's mean correction, which is zero in expectation.
    for metric in ("ips", "snips"):
        assert ope.loc[("live", metric), "value"] == pytest.approx(clicks / n)
    assert ope.loc[("live", "dr"), "value"] == pytest.approx(clicks / n, abs=0.02)
    assert (ope.loc["live", "n"] == n).all()
    # The candidate learned that shoes win: it is valued above the live plan.
    assert ope.loc[("candidate", "snips"), "value"] > ope.loc[("live", "snips"), "value"]


def test_rerun_of_a_date_writes_identical_plan_and_report(loop: Engine) -> None:
    evaluate_effects(loop, NEXT, CONFIG)
    first = report(loop, NEXT)
    plan_delivery(loop, NEXT, CONFIG)
    evaluate_effects(loop, NEXT, CONFIG)
    pd.testing.assert_frame_equal(report(loop, NEXT), first)


def test_a_day_without_impressions_gets_an_empty_report(loop: Engine) -> None:
    later = NEXT + dt.timedelta(days=3)
    summary = evaluate_effects(loop, later, CONFIG)
    assert summary["rows"] == 0 and "no impressions" in summary["reason"]
    assert report(loop, later).empty

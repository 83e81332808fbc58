"""Automatic approval of the simulated store's creatives: off in production, on under the demo profile, and
never over a person's decision."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.creatives.review import AUTO_REVIEWER, auto_approve_creatives
from pipelines.errors import ConfigError
from pipelines.settings import Settings
from pipelines.warehouse.partitions import replace_partition

DAY = dt.date(2026, 6, 29)
NEXT = dt.date(2026, 6, 30)


def _creatives(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """INSERT INTO campaigns (campaign_id, name, start_date, end_date, categories, headline_template)
                   VALUES (1, 'sale', '2026-06-01', '2026-07-31', '{shoes}', '{category} sale')"""
            )
        )
    for day, statuses in ((DAY, ["pending_review", "pending_review", "rejected"]), (NEXT, ["pending_review"])):
        frame = pd.DataFrame(
            {
                "segment_id": 0,
                "category": "shoes",
                "rank": range(1, len(statuses) + 1),
                "banner_size": "300x250",
                "image": [b"png"] * len(statuses),
                "headline": "shoes sale",
                "scores": [{"confidence": 0.9}] * len(statuses),
                "status": statuses,
                "reviewed_by": [None if s == "pending_review" else "ana" for s in statuses],
                "model_version": "creative_gan-1",
            }
        )
        replace_partition(engine, "ad_creatives", day, frame, date_column="campaign_date", scope={"campaign_id": 1})


def _reviews(engine: Engine) -> list[tuple[dt.date, int, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT campaign_date, rank, status, reviewed_by FROM ad_creatives ORDER BY campaign_date, rank")
        )
        return [tuple(row) for row in rows]


@pytest.mark.integration
def test_auto_approval_is_off_in_production_and_approves_only_the_dates_pending_creatives(engine: Engine) -> None:
    _creatives(engine)
    before = _reviews(engine)
    assert auto_approve_creatives(engine, DAY, Settings()) == 0
    assert auto_approve_creatives(engine, DAY, Settings(profile="demo", auto_approve_creatives=False)) == 0
    assert _reviews(engine) == before

    assert auto_approve_creatives(engine, DAY, Settings(profile="demo")) == 2
    assert _reviews(engine) == [
        (DAY, 1, "approved", AUTO_REVIEWER),
        (DAY, 2, "approved", AUTO_REVIEWER),
        (DAY, 3, "rejected", "ana"),  # a person's decision stands
        (NEXT, 1, "pending_review", None),
    ]
    with engine.connect() as conn:
        shown = conn.execute(
            sa.text("SELECT count(*) FROM approved_creatives WHERE approved_by = :who"), {"who": AUTO_REVIEWER}
        )
        assert shown.scalar() == 2


def test_the_setting_reads_true_or_false_and_defaults_to_the_profile() -> None:
    assert Settings.from_env({}).approves_creatives_automatically is False
    assert Settings.from_env({"PIPELINES_PROFILE": "demo"}).approves_creatives_automatically is True
    production = Settings.from_env({"PIPELINES_AUTO_APPROVE_CREATIVES": "true"})
    assert production.approves_creatives_automatically is True
    demo_off = Settings.from_env({"PIPELINES_PROFILE": "demo", "PIPELINES_AUTO_APPROVE_CREATIVES": "no"})
    assert demo_off.approves_creatives_automatically is False
    with pytest.raises(ConfigError, match="PIPELINES_AUTO_APPROVE_CREATIVES must be true or false"):
        Settings.from_env({"PIPELINES_AUTO_APPROVE_CREATIVES": "sometimes"})

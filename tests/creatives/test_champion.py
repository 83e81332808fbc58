"""Champion/challenger for the creative GAN, point in time: byte-identical reruns and backfills, the gate."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.creatives.candidate import promotion_rule
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.registry import champion, decide
from pipelines.settings import Settings
from tests.creatives.store import DAY, TINY, creatives, make_store
from tests.creatives.test_task import run

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, device="cpu")


def test_rerun_and_backfill_of_a_campaign_date_give_byte_identical_creatives(
    engine: Engine, settings: Settings
) -> None:
    make_store(engine)
    first = run(engine, DAY, settings, TINY)
    before = creatives(engine, DAY)

    rerun = run(engine, DAY, settings, TINY)
    assert rerun["candidate"] == first["candidate"]  # retrained from the same parent: the same version
    pd.testing.assert_frame_equal(creatives(engine, DAY), before)

    with engine.begin() as conn:  # a reviewer approves one banner in the UI
        conn.execute(
            sa.text(
                """UPDATE ad_creatives SET status = 'approved', reviewed_by = 'ana', reviewed_at = '2026-06-10 12:00+00'
                   WHERE campaign_date = :d AND rank = 1 AND banner_size = '300x250'"""
            ),
            {"d": DAY},
        )
    before = creatives(engine, DAY)
    assert (before["status"] == "approved").sum() == 2

    later = run(engine, DAY + dt.timedelta(days=1), settings, TINY)  # trains a new, warm-started candidate
    assert later["parent"] == later["training"]["warm_start_from"] == first["served_by"]
    backfill = run(engine, DAY, settings, TINY)
    assert backfill["served_by"] == first["served_by"]  # the champion of that date, not today's
    pd.testing.assert_frame_equal(creatives(engine, DAY), before)  # same bytes, and the approvals survive
    assert backfill["campaigns"]["1"]["kept_reviews"] == 2


def test_the_gate_blocks_a_bad_generator_and_the_champion_stays(engine: Engine, settings: Settings) -> None:
    make_store(engine)
    strict = dataclasses.replace(TINY, train_steps=1, min_conditional_accuracy=1.0)
    blocked = run(engine, DAY, settings, strict, force_promote=True)  # not even forcing passes the gate
    assert blocked["candidate_status"] == "rejected"
    assert "below the gate" in blocked["decision"]
    assert blocked["served_by"] is None and blocked["creatives"] == 0
    assert blocked["reason"] == "no generator has passed the quality gate yet"
    assert creatives(engine, DAY).empty

    good = run(engine, DAY + dt.timedelta(days=1), settings, TINY)
    bad = run(engine, DAY + dt.timedelta(days=2), settings, strict)
    assert bad["candidate_status"] == "rejected"
    assert bad["served_by"] == good["served_by"] == champion(engine, MODEL_NAME).version
    assert set(creatives(engine, DAY + dt.timedelta(days=2))["model_version"]) == {good["served_by"]}

    again = run(engine, DAY, settings, strict)  # a date before the first champion says what is true for it
    assert again["served_by"] is None
    assert f"the first champion was trained on {DAY + dt.timedelta(days=1)}, after this date" in again["reason"]


def test_the_gate_rejects_a_generator_that_draws_one_prototype_per_category() -> None:
    collapsed = {"conditional_accuracy": 0.96, "recall": 0.0, "frechet_ratio": 84.7}  # measured on Fashion-MNIST
    decision = decide(promotion_rule(CreativesConfig()), collapsed, None, force=True)
    assert not decision.promote
    assert "recall=0.0 is below the gate 0.1" in decision.reason
    diverse = collapsed | {"recall": 0.4}
    assert decide(promotion_rule(CreativesConfig()), diverse, None).promote

"""Partition writes: COPY round-trips every value type, and a replace is all-or-nothing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg2.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.partitions import copy_frames, partition_name, replace_partition

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 14)


@pytest.fixture
def store(engine: Engine) -> Engine:
    users = pd.DataFrame(
        {"user_id": [1, 2], "signup_date": [DAY, DAY], "age_group": ["25-29", None], "region": ["north", "south"]}
    )
    items = pd.DataFrame(
        {"item_id": [10, 11], "category": ["Bag", "Dress"], "price": [49.5, 80.0], "title": ["Tote", "Wrap dress"]}
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": [1, 2],
            "name": ["Spring", "Bags"],
            "start_date": [DAY, DAY],
            "end_date": [DAY, DAY],
            "categories": [["Bag"], ["Bag", "Dress"]],
            "target_segments": [[0, 1], []],
            "headline_template": ["{category}!", "Hi"],
            "discount_pct": [10, None],
        }
    )
    with engine.begin() as conn:
        copy_frames(conn, "users", users)
        copy_frames(conn, "items", items)
        copy_frames(conn, "campaigns", campaigns)
    return engine


def _recs(scores: list[float], rank_start: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1] * len(scores),
            "rank": range(rank_start, rank_start + len(scores)),
            "item_id": [10 + i % 2 for i in range(len(scores))],
            "score": scores,
            "source": "model",
            "model_version": "v1",
        }
    )


def _rows(engine: Engine, query: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query))]


def test_copy_round_trips_awkward_values(store: Engine) -> None:
    headline = 'Say "hi",\tthen\nnew line \\ backslash'
    frame = pd.DataFrame(
        {
            "campaign_id": [1, 1],
            "segment_id": [0, 1],
            "category": ["Bag", "Bag"],
            "rank": [1, 1],
            "banner_size": ["300x250", "728x90"],
            "image": [b"\x89PNG\r\n\x00\\", b"\x00"],
            "headline": [headline, ""],
            "scores": [{"realism": 0.5, "tags": ["a"]}, {}],
            "model_version": ["v", "v"],
        }
    )
    written = replace_partition(
        store, "ad_creatives", DAY, frame, date_column="campaign_date", scope={"campaign_id": 1}
    )
    assert written == 2
    rows = _rows(store, "SELECT image, headline, scores, status FROM ad_creatives ORDER BY segment_id")
    assert bytes(rows[0][0]) == b"\x89PNG\r\n\x00\\"
    assert rows[0][1] == headline and rows[1][1] == ""  # empty string stays empty, not NULL
    assert rows[0][2] == {"realism": 0.5, "tags": ["a"]} and rows[1][2] == {}
    assert rows[0][3] == "pending_review"
    assert _rows(store, "SELECT categories, target_segments, discount_pct FROM campaigns ORDER BY campaign_id") == [
        (["Bag"], [0, 1], 10),
        (["Bag", "Dress"], [], None),
    ]


def test_replace_is_idempotent_and_creates_the_day_partition(store: Engine) -> None:
    for _ in range(2):
        assert replace_partition(store, "recommendations", DAY, _recs([0.9, 0.8, 0.7])) == 3
    assert _rows(store, "SELECT count(*) FROM recommendations") == [(3,)]
    parts = _rows(
        store, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'recommendations'::regclass"
    )
    assert parts == [(partition_name("recommendations", DAY),)]


def test_failed_replace_leaves_the_previous_partition_intact(store: Engine) -> None:
    replace_partition(store, "recommendations", DAY, _recs([0.9, 0.8]))
    before = _rows(store, "SELECT * FROM recommendations ORDER BY rank")

    def chunks():
        yield _recs([0.5, 0.4])  # streamed in, then the second chunk breaks the CHECK (rank >= 1)
        yield _recs([0.3], rank_start=0)

    with pytest.raises(psycopg2.errors.CheckViolation, match="rank"):
        replace_partition(store, "recommendations", DAY, chunks())
    assert _rows(store, "SELECT * FROM recommendations ORDER BY rank") == before


def test_scoped_replace_touches_only_its_scope(store: Engine) -> None:
    base = {
        "segment_id": [0],
        "category": ["Bag"],
        "rank": [1],
        "banner_size": ["300x250"],
        "image": [b"x"],
        "headline": ["h"],
        "scores": [{}],
        "model_version": ["v1"],
    }
    for campaign in (1, 2):
        replace_partition(
            store, "ad_creatives", DAY, pd.DataFrame(base), date_column="campaign_date", scope={"campaign_id": campaign}
        )
    replace_partition(
        store,
        "ad_creatives",
        DAY,
        pd.DataFrame({**base, "model_version": ["v2"]}),
        date_column="campaign_date",
        scope={"campaign_id": 1},
    )
    assert _rows(store, "SELECT campaign_id, model_version FROM ad_creatives ORDER BY campaign_id") == [
        (1, "v2"),
        (2, "v1"),
    ]


def test_rows_for_another_date_are_refused_before_writing(store: Engine) -> None:
    replace_partition(store, "recommendations", DAY, _recs([0.9]))
    wrong = _recs([0.5]).assign(as_of_date=DAY + dt.timedelta(days=1))
    with pytest.raises(ValueError, match="as_of_date=.* in rows written for as_of_date="):
        replace_partition(store, "recommendations", DAY, wrong)
    assert _rows(store, "SELECT score FROM recommendations") == [(pytest.approx(0.9),)]

"""Segment descriptions: lifts, recency, frequency and demographics on a crafted store, and the written rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy.engine import Engine

from pipelines import modeltask
from pipelines.profiles.segments import describe_members
from pipelines.profiles.task import ProfileRecipe
from pipelines.settings import Settings
from pipelines.warehouse.reads import read_frame
from tests.profiles.store import events_frame, load_store
from tests.profiles.test_task import ACTIVE, CONFIG, DAY, N_USERS

END = pd.Timestamp("2026-03-31 00:00", tz="UTC")


def _at(days_before: float) -> pd.Timestamp:
    return END - pd.Timedelta(days=days_before)


def test_lifts_recency_frequency_and_demographics_of_a_crafted_store() -> None:
    # Users 1, 2 form segment 0, user 3 segment 1; user 4 is not profiled but is part of the store.
    members = pd.Series({1: 0, 2: 0, 3: 1})
    events = pd.DataFrame(
        [
            (1, "shoes", _at(1)), (1, "shoes", _at(3)), (2, "shoes", _at(2)), (2, "bags", _at(5)),
            (3, "bags", _at(4)), (3, "bags", _at(6)), (4, "hats", _at(1)), (4, "hats", _at(2)),
        ],
        columns=["user_id", "category", "event_ts"],
    )  # fmt: skip
    demographics = pd.DataFrame(
        {"age_group": ["25-34", None, "45-54", "25-34"], "region": [None, None, None, "north"]},
        index=pd.Index([1, 2, 3, 4], name="user_id"),
    )
    got = describe_members(members, events, demographics, END, top=2)

    # The store: shoes 3/8, bags 3/8, hats 2/8.
    assert got[0]["size"] == 2
    assert got[0]["top_categories"] == [
        {"category": "shoes", "share": 0.75, "lift": 2.0},  # 3/4 of the members' events / 3/8
        {"category": "bags", "share": 0.25, "lift": 0.667},
    ]
    assert got[1]["top_categories"] == [{"category": "bags", "share": 1.0, "lift": 2.667}]
    assert got[0]["recency_days"] == {"p25": 1.25, "median": 1.5, "p75": 1.75}  # last events 1 and 2 days back
    assert got[1]["recency_days"] == {"p25": 4.0, "median": 4.0, "p75": 4.0}
    assert got[0]["events_per_member"] == {"p25": 2.0, "median": 2.0, "p75": 2.0}
    # Only user 1 of segment 0 has an age group, nobody in it a region: the region is left out.
    assert got[0]["demographics"] == {"age_group": {"known_share": 0.5, "top": [{"value": "25-34", "share": 1.0}]}}
    assert got[1]["demographics"] == {"age_group": {"known_share": 1.0, "top": [{"value": "45-54", "share": 1.0}]}}


def test_a_member_without_events_in_the_window_counts_as_zero_events_and_no_recency() -> None:
    members = pd.Series({1: 5, 2: 5})
    events = pd.DataFrame({"user_id": [1], "category": ["shoes"], "event_ts": [_at(2)]})
    got = describe_members(members, events, pd.DataFrame(index=pd.Index([], name="user_id")), END, top=3)
    assert got[5]["events_per_member"]["median"] == 0.5 and got[5]["recency_days"]["median"] == 2.0
    assert "demographics" not in got[5]


@pytest.mark.integration
def test_written_descriptions_agree_with_the_warehouse(engine: Engine, tmp_path: Path) -> None:
    events = events_frame(ACTIVE, DAY - dt.timedelta(days=29), 30, seed=0)
    load_store(engine, N_USERS, events)
    settings = Settings(state_dir=tmp_path, device="cpu")
    modeltask.run(ProfileRecipe(CONFIG), engine, DAY, settings, device=torch.device("cpu"))

    segments = read_frame(
        engine, "SELECT segment_id, size, description FROM segments WHERE as_of_date = :d", {"d": DAY}
    )
    assert len(segments) == CONFIG.segments and segments["description"].notna().all()
    # The lifts again, straight from the warehouse: members' share of a category over the store's.
    start = DAY - dt.timedelta(days=CONFIG.history_days - 1)
    params = {
        "d": DAY,
        "types": [t for t, w in CONFIG.event_weights.items() if w > 0],
        "start": dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        "end": dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    }
    shares = read_frame(
        engine,
        """WITH e AS (SELECT e.user_id, i.category FROM events e JOIN items i USING (item_id)
                      WHERE e.event_ts < :end AND e.event_ts >= :start AND e.event_type = ANY(:types))
           SELECT p.segment_id, e.category,
                  count(*)::float / sum(count(*)) OVER (PARTITION BY p.segment_id) AS share,
                  (SELECT count(*) FROM e e2 WHERE e2.category = e.category)::float / (SELECT count(*) FROM e) AS store
           FROM e JOIN user_profiles p ON p.user_id = e.user_id AND p.as_of_date = :d
           GROUP BY p.segment_id, e.category""",
        params,
    ).set_index(["segment_id", "category"])  # fmt: skip
    for row in segments.itertuples():
        description = row.description
        assert description["size"] == row.size
        assert len(description["top_categories"]) == CONFIG.top_categories
        for top in description["top_categories"]:
            expected = shares.loc[(row.segment_id, top["category"])]
            assert top["share"] == pytest.approx(expected["share"], abs=1e-4)
            assert top["lift"] == pytest.approx(expected["share"] / expected["store"], abs=2e-3)
        assert description["top_categories"][0]["lift"] > 1.5  # the store gives each user a favourite category
        assert 0 <= description["recency_days"]["median"] <= CONFIG.history_days
        assert description["events_per_member"]["median"] >= 1
        # Every user of this store is in the north and none has an age group.
        assert description["demographics"] == {
            "region": {"known_share": 1.0, "top": [{"value": "north", "share": 1.0}]}
        }
    assert np.isclose(sum(d["size"] for d in segments["description"]), len(ACTIVE))

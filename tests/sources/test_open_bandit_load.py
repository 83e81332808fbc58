"""The Open Bandit sample into impressions and outcomes: both policies' logs, the batches of their dates
replaced (a second load adds nothing), other dates untouched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.sources import load_open_bandit
from pipelines.warehouse.reads import read_frame

pytestmark = pytest.mark.integration

# (timestamp, item_id, position, click, propensity_score) per policy; user features are filled in.
ROWS = {
    "random": [
        ("2019-11-24 10:00:00+00:00", 3, 1, 1, 0.0125),
        ("2019-11-24 11:00:00+00:00", 5, 2, 0, 0.0125),
        ("2019-11-25 09:30:00+00:00", 7, 3, 0, 0.0125),
    ],
    "bts": [
        ("2019-11-24 10:05:00+00:00", 3, 1, 0, 0.41),
        ("2019-11-25 12:00:00+00:00", 9, 2, 1, 0.2),
    ],
}


def write_open_bandit(folder: Path) -> Path:
    for policy, rows in ROWS.items():
        frame = pd.DataFrame(rows, columns=["timestamp", "item_id", "position", "click", "propensity_score"])
        for i in range(4):
            frame[f"user_feature_{i}"] = [f"f{i}-{n % 2}" for n in range(len(frame))]
        (folder / policy).mkdir(parents=True)
        frame.to_csv(folder / policy / "all.csv")
    return folder


def test_both_policies_load_as_arms_and_a_second_load_replaces_the_first(engine: Engine, tmp_path: Path) -> None:
    folder = write_open_bandit(tmp_path / "open-bandit")
    other_day = dt.date(2019, 11, 23)
    with engine.begin() as conn:  # a batch of another date that the load must leave alone
        conn.execute(sa.text("INSERT INTO outcomes (batch_date, impression_id) VALUES (:d, -7)"), {"d": other_day})
    for _ in range(2):
        summary = load_open_bandit(engine, folder)
        assert dict(summary.rows) == {"impressions": 5, "outcomes": 2}
    shown = read_frame(engine, "SELECT * FROM impressions ORDER BY policy, ts")
    assert shown.groupby(["policy", "arm"]).size().to_dict() == {("bts", "personalised"): 2, ("random", "holdout"): 3}
    assert set(shown["placement"]) == {"recs_home"} and shown["creative_id"].isna().all()
    assert sorted(shown["batch_date"].astype(str).unique()) == ["2019-11-24", "2019-11-25"]
    assert shown["impression_id"].is_unique
    clicks = read_frame(
        engine,
        """SELECT i.policy, i.item_id, o.click_ts = i.ts AS at_impression FROM outcomes o
           JOIN impressions i USING (impression_id) ORDER BY i.policy""",
    )
    assert clicks.to_dict("records") == [
        {"policy": "bts", "item_id": 9, "at_impression": True},
        {"policy": "random", "item_id": 3, "at_impression": True},
    ]
    kept = read_frame(engine, "SELECT count(*) AS n FROM outcomes WHERE batch_date = :d", {"d": other_day})
    assert kept["n"].iloc[0] == 1

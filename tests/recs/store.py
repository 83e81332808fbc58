"""A tiny generated store with a planted sequential pattern, written into the test database.

Items form a chain 1 -> 2 -> ... -> n_items -> 1: after buying item i a user buys item i + 1 with
probability `follow`, else a random item. Popularity is flat by construction, so a model that learns
"what comes next" must beat it by a wide margin, and one that does not, cannot.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.partitions import copy_frames

START = dt.date(2026, 3, 1)


def write_store(
    engine: Engine,
    *,
    n_users: int = 120,
    n_items: int = 24,
    length: tuple[int, int] = (5, 10),
    days: int = 10,
    follow: float = 0.9,
    seed: int = 0,
    extra_users: int = 0,
) -> pd.DataFrame:
    """Write users, items and purchase events (one per user per step, spread over `days`); return events.

    `extra_users` registered users have no events at all (they must get popularity).
    """
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + extra_users + 1),
            "signup_date": START - dt.timedelta(days=30),
            "age_group": "25-34",
            "region": "north",
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1) * 10,  # external ids differ from embedding rows on purpose
            "category": [f"cat{i % 3}" for i in range(n_items)],
            "price": 9.99,
            "title": [f"item {i}" for i in range(n_items)],
        }
    )
    rows = []
    for user in range(1, n_users + 1):
        steps = rng.integers(length[0], length[1] + 1)
        item = int(rng.integers(n_items))
        for step in range(steps):
            ts = dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
                days=int(step * days / steps), minutes=int(user), seconds=step
            )
            rows.append((user, (item + 1) * 10, "purchase", ts))
            item = (item + 1) % n_items if rng.random() < follow else int(rng.integers(n_items))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "event_ts"])
    events = events.sort_values(["event_ts", "user_id"]).reset_index(drop=True)
    write_events(engine, events, users=users, items=items)
    return events


def write_events(
    engine: Engine, events: pd.DataFrame, *, users: pd.DataFrame | None = None, items: pd.DataFrame | None = None
) -> None:
    """Append events (user_id, item_id, event_type, event_ts) with the columns the data contract needs."""
    with engine.begin() as conn:
        first_id = conn.exec_driver_sql("SELECT coalesce(max(event_id), 0) FROM events").scalar() or 0
        frame = events.assign(
            batch_date=pd.to_datetime(events["event_ts"]).dt.date,
            event_id=np.arange(first_id + 1, first_id + 1 + len(events)),
            price=9.99,
            quantity=1,
        )[["batch_date", "event_id", "user_id", "item_id", "event_type", "event_ts", "price", "quantity"]]
        if users is not None:
            copy_frames(conn, "users", users)
        if items is not None:
            copy_frames(conn, "items", items)
        copy_frames(conn, "events", frame)


def last_day(events: pd.DataFrame) -> dt.date:
    return pd.to_datetime(events["event_ts"]).max().date()


def write_segment(engine: Engine, day: dt.date, users: list[int], segment_id: int = 7) -> None:
    """Profiles of `day` that put `users` in one segment (its members' popularity serves them without history)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE user_profiles_p{day:%Y%m%d} PARTITION OF user_profiles "
            f"FOR VALUES FROM ('{day}') TO ('{day + dt.timedelta(days=1)}')"
        )
        # real[] is assigned to the column whether it is real[] or pgvector's vector (assignment cast).
        conn.execute(
            sa.text(
                """INSERT INTO user_profiles (as_of_date, user_id, embedding, segment_id, top_categories, model_version)
                   SELECT :d, u, ARRAY[0, 1]::real[], :s, '{"cat0": 1.0}'::jsonb, 'vae-test'
                   FROM unnest(CAST(:users AS bigint[])) AS u"""
            ),
            {"d": day, "users": users, "s": segment_id},
        )

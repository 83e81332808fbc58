"""A tiny store with taste: users who mostly buy from one or two favourite categories.

Small enough for a test to train on in seconds, structured enough that a model beats popularity and
segments follow the favourite categories.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.warehouse.partitions import copy_frames

CATEGORIES = ("Sneakers", "Bags", "Dresses", "Coats")
ITEMS_PER_CATEGORY = 12


def items_frame() -> pd.DataFrame:
    n = len(CATEGORIES) * ITEMS_PER_CATEGORY
    return pd.DataFrame(
        {
            "item_id": np.arange(1, n + 1, dtype=np.int64),
            "category": [CATEGORIES[i // ITEMS_PER_CATEGORY] for i in range(n)],
            "price": 10.0,
            "title": [f"item {i}" for i in range(1, n + 1)],
        }
    )


def users_frame(n_users: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": np.arange(1, n_users + 1, dtype=np.int64), "signup_date": dt.date(2026, 1, 1), "region": "north"}
    )


def events_frame(
    user_ids: np.ndarray,
    first_day: dt.date,
    days: int,
    seed: int,
    *,
    events_per_user: int = 12,
    first_event_id: int = 1,
) -> pd.DataFrame:
    """Each user favours category (user_id % 4); 85% of events there, in a favourite sub-range of items."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in user_ids:
        favourite = int(user) % len(CATEGORIES)
        core = favourite * ITEMS_PER_CATEGORY + 1 + (int(user) // len(CATEGORIES)) % 2 * 6  # 6-item taste
        for _ in range(events_per_user):
            if rng.random() < 0.85:
                item = core + int(rng.integers(6))
            else:
                item = int(rng.integers(1, len(CATEGORIES) * ITEMS_PER_CATEGORY + 1))
            day = first_day + dt.timedelta(days=int(rng.integers(days)))
            ts = dt.datetime.combine(day, dt.time(hour=int(rng.integers(24))), tzinfo=dt.UTC)
            kind = rng.choice(["view", "cart", "purchase"], p=[0.7, 0.2, 0.1])
            rows.append((day, int(user), item, str(kind), ts))
    frame = pd.DataFrame(rows, columns=["batch_date", "user_id", "item_id", "event_type", "event_ts"])
    frame.insert(1, "event_id", np.arange(first_event_id, first_event_id + len(frame), dtype=np.int64))
    frame["price"] = 10.0
    frame["quantity"] = 1
    return frame


def load_store(engine: Engine, n_users: int, events: pd.DataFrame) -> None:
    """Write users, items and events with COPY (the same path the loaders use)."""
    with engine.begin() as conn:
        copy_frames(conn, "users", users_frame(n_users))
        copy_frames(conn, "items", items_frame())
        copy_frames(conn, "events", events)


def add_events(engine: Engine, events: pd.DataFrame) -> None:
    with engine.begin() as conn:
        copy_frames(conn, "events", events)

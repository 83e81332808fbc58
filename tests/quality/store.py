"""A tiny hand-made store for the gate's tests: five users, four items in two categories, ten events a day.

Dates: 2024-03-01..07 history (10 events each), CLEAN = 03-08 (10), WARN = 03-09 (30: three times the
trailing mean), BAD = 03-10 (10 clean + one bad row per class of bad input), EMPTY = 03-11 (none: a gap),
LAST = 03-12 (10), the newest loaded batch.
Event ids are day * 100 + n (bad rows: 5001..), unique across days unless a bad row repeats one on purpose.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

FIRST = dt.date(2024, 3, 1)
CLEAN = dt.date(2024, 3, 8)
WARN = dt.date(2024, 3, 9)
BAD = dt.date(2024, 3, 10)
EMPTY = dt.date(2024, 3, 11)
LAST = dt.date(2024, 3, 12)

# category -> list prices; with price_factor 10: shoes [2, 400], books [0.5, 150]
ITEMS = [(1, "shoes", 20.0), (2, "shoes", 40.0), (3, "books", 5.0), (4, "books", 15.0)]

# check that must catch it -> (event_id of the bad row, what is wrong with it)
BAD_ROWS: dict[str, tuple[int | None, dict[str, Any]]] = {
    "events.event_id.not_null": (None, {}),
    "events.user_id.not_null": (5001, {"user_id": None}),
    "events.item_id.not_null": (5002, {"item_id": None}),
    "events.event_type.not_null": (5003, {"event_type": None}),
    "events.event_ts.not_null": (5004, {"event_ts": None}),
    "events.price.not_null": (5012, {"price": None}),
    "events.quantity.not_null": (5013, {"quantity": None}),
    "events.price.non_negative": (5005, {"price": -5.0}),
    "events.quantity.min": (5014, {"quantity": -2}),
    "events.quantity.max": (5015, {"quantity": 1_000_000}),
    "events.price.category_range": (5006, {"item_id": 3, "price": 9999.0}),
    "events.item_id.references_items": (5007, {"item_id": 999}),
    "events.user_id.references_users": (5008, {"user_id": 999}),
    "events.event_ts.in_business_date": (5009, {"event_ts": dt.datetime(2024, 3, 11, 2, tzinfo=dt.UTC)}),
    "events.event_type.allowed": (5011, {"event_type": "click"}),
    "events.event_id.unique": (5010, {}),  # delivered twice in the same batch
    "events.event_id.unique_vs_earlier": (801, {}),  # already delivered with CLEAN's batch
}


def event(day: dt.date, event_id: int | None, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid event of `day`'s batch; `changes` make it bad."""
    item_id, _, price = ITEMS[n % len(ITEMS)]
    row = {
        "batch_date": day,
        "event_id": event_id,
        "user_id": 1 + n % 5,
        "item_id": item_id,
        "event_type": ("view", "cart", "purchase")[n % 3],
        "event_ts": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(minutes=37 * n),
        "price": price,
        "quantity": 1,
    }
    return {**row, **changes}


def day_events(day: dt.date, count: int) -> list[dict[str, Any]]:
    return [event(day, day.day * 100 + n, n) for n in range(count)]


def bad_day_events() -> list[dict[str, Any]]:
    rows = day_events(BAD, 10)
    rows += [event(BAD, event_id, 3, **changes) for event_id, changes in BAD_ROWS.values()]
    rows.append(event(BAD, 5010, 4))  # the second copy of 5010
    return rows


def load_store(engine: Engine) -> None:
    """Users, items and every test day's events, with plain parameterised INSERTs (a few dozen rows)."""
    events = [row for day in range(1, 8) for row in day_events(dt.date(2024, 3, day), 10)]
    events += day_events(CLEAN, 10) + day_events(WARN, 30) + bad_day_events() + day_events(LAST, 10)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO users (user_id, signup_date, region) VALUES (:u, '2024-01-01', 'north')"),
            [{"u": u} for u in range(1, 6)],
        )
        conn.execute(
            sa.text("INSERT INTO items (item_id, category, price, title) VALUES (:i, :c, :p, 'item')"),
            [{"i": i, "c": c, "p": p} for i, c, p in ITEMS],
        )
        conn.execute(
            sa.text(
                """INSERT INTO events (batch_date, event_id, user_id, item_id, event_type, event_ts, price, quantity)
                   VALUES (:batch_date, :event_id, :user_id, :item_id, :event_type, :event_ts, :price, :quantity)"""
            ),
            events,
        )


def dq_rows(engine: Engine, day: dt.date) -> dict[str, dict[str, Any]]:
    """The date's dq_results rows by expectation name."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM dq_results WHERE as_of_date = :d"), {"d": day}).mappings()
        return {row["expectation"]: dict(row) for row in rows}

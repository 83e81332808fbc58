"""A tiny hand-made store for the gate's tests: five users, four items in two categories, ten events a day.

Dates: 2024-03-01..07 history (10 events each), CLEAN = 03-08 (10), WARN = 03-09 (30: three times the
trailing mean), BAD = 03-10 (10 clean + one bad row per class of bad input), EMPTY = 03-11 (none: a gap),
LAST = 03-12 (10), the newest loaded batch.
Event ids are day * 100 + n (bad rows: 5001..), unique across days unless a bad row repeats one on purpose.

Delivery logs: CLEAN shows five impressions (ids 80001..) with a click, a click and conversion, and
nothing else; BAD shows five clean impressions (100001..) and one bad impression or outcome per delivery
check; LAST delivers, for CLEAN's impressions, a late conversion (inside the 7-day window, its click came
with CLEAN) and a click four days late (outside the 1-day window: a warning). WARN has no delivery logs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

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


# delivery check that must catch it -> (impression_id of the bad row, what is wrong with it)
BAD_IMPRESSIONS: dict[str, tuple[int | None, dict[str, Any]]] = {
    "impressions.impression_id.not_null": (None, {}),
    "impressions.ts.not_null": (20001, {"ts": None}),
    "impressions.user_id.not_null": (20002, {"user_id": None}),
    "impressions.placement.not_null": (20003, {"placement": None}),
    "impressions.policy.not_null": (20004, {"policy": None}),
    "impressions.propensity.not_null": (20005, {"propensity": None}),
    "impressions.arm.not_null": (20006, {"arm": None}),
    "impressions.propensity.in_range": (20007, {"propensity": 0.0}),
    "impressions.arm.allowed": (20009, {"arm": "treatment"}),
    "impressions.ts.in_business_date": (20010, {"ts": dt.datetime(2024, 3, 11, 2, tzinfo=dt.UTC)}),
    "impressions.impression_id.unique": (20011, {}),  # delivered twice in the same batch
    "impressions.impression_id.unique_vs_earlier": (80001, {}),  # already delivered with CLEAN's batch
}
BAD_OUTCOMES: dict[str, tuple[int | None, dict[str, Any]]] = {
    "outcomes.impression_id.not_null": (None, {}),
    "outcomes.impression_id.references_impressions": (99999, {}),
    "outcomes.conversion.has_click": (100001, {"click_ts": None, "conversion_minutes": 30, "revenue": 20.0}),
    "outcomes.click_ts.after_impression": (100002, {"click_minutes": -60}),
    "outcomes.revenue.non_negative": (100003, {"conversion_minutes": 30, "revenue": -5.0}),
    "outcomes.click_ts.not_after_batch": (100004, {"click_minutes": 24 * 60}),
    "outcomes.conversion_ts.not_after_batch": (100005, {"conversion_minutes": 24 * 60}),
}
DELIVERY_BAD_ROWS = {**BAD_IMPRESSIONS, **BAD_OUTCOMES}


def impression(day: dt.date, impression_id: int | None, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid impression of `day`'s batch, shown at 10:00 + n minutes; `changes` make it bad."""
    row = {
        "batch_date": day,
        "impression_id": impression_id,
        "ts": dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC) + dt.timedelta(minutes=n),
        "user_id": 1 + n % 5,
        "placement": "banner_300x250",
        "position": 1,
        "creative_id": f"c1-s0-shoes-r{1 + n % 2}",
        "item_id": None,
        "campaign_id": 1,
        "segment_id": 0,
        "policy": "thompson",
        "policy_version": "v1",
        "propensity": 0.5,
        "arm": ("personalised", "holdout")[n % 2],
    }
    return {**row, **changes}


def outcome(
    batch: dt.date,
    shown: dict[str, Any],
    click_minutes: int | None = 2,
    conversion_minutes: int | None = None,
    revenue: float | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """An outcome of the impression `shown`, delivered with `batch`; times in minutes after the impression."""
    at = shown["ts"] or dt.datetime.combine(batch, dt.time(10), tzinfo=dt.UTC)
    row = {
        "batch_date": batch,
        "impression_id": shown["impression_id"],
        "click_ts": None if click_minutes is None else at + dt.timedelta(minutes=click_minutes),
        "conversion_ts": None if conversion_minutes is None else at + dt.timedelta(minutes=conversion_minutes),
        "revenue": revenue,
    }
    return {**row, **changes}


def delivery_logs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every test day's impressions and outcomes."""
    clean = [impression(CLEAN, 80001 + n, n) for n in range(5)]
    bad_clean = [impression(BAD, 100001 + n, n) for n in range(5)]
    bad = [impression(BAD, impression_id, 3, **changes) for impression_id, changes in BAD_IMPRESSIONS.values()]
    bad.append(impression(BAD, 20011, 4))  # the second copy of 20011
    outcomes = [outcome(CLEAN, clean[0]), outcome(CLEAN, clean[1], 2, 40, 35.5)]
    # Late arrivals: a conversion 4 days after its click's impression (inside 7 days), a click 4 days late.
    outcomes += [outcome(LAST, clean[0], None, 4 * 24 * 60, 12.0), outcome(LAST, clean[2], 4 * 24 * 60)]
    by_id = {row["impression_id"]: row for row in bad_clean}
    for impression_id, changes in BAD_OUTCOMES.values():
        shown = by_id.get(impression_id, impression(BAD, impression_id, 0))
        outcomes.append(outcome(BAD, shown, **changes))
    return clean + bad_clean + bad, outcomes


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
        impressions, outcomes = delivery_logs()
        insert_rows(conn, "impressions", impressions)
        insert_rows(conn, "outcomes", outcomes)


def insert_rows(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Plain parameterised INSERTs of a few dozen dict rows (all with the same keys)."""
    columns = list(rows[0])
    names, values = ", ".join(columns), ", ".join(f":{c}" for c in columns)
    conn.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({values})"), rows)


def dq_rows(engine: Engine, day: dt.date) -> dict[str, dict[str, Any]]:
    """The date's dq_results rows by expectation name."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM dq_results WHERE as_of_date = :d"), {"d": day}).mappings()
        return {row["expectation"]: dict(row) for row in rows}

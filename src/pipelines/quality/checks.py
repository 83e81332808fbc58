"""The catalogue of the gate's checks: stable names, what each guards, and its default severity.

Stdlib only on purpose: configs and the DAG can name checks (for severity overrides) without importing
Great Expectations. `pipelines.quality.suite` turns each entry into a GX expectation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "warning"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning")

EVENT_TYPES = ("view", "cart", "purchase")

# The events data contract (sql/001_source_tables.sql) as PostgreSQL reports the column types. A team that
# fills `events` from a view must keep these types (or override the type checks' severity to warning).
COLUMN_TYPES: dict[str, tuple[str, ...]] = {
    "batch_date": ("DATE",),
    "event_id": ("BIGINT", "INTEGER"),
    "user_id": ("BIGINT", "INTEGER"),
    "item_id": ("BIGINT", "INTEGER"),
    "event_type": ("TEXT", "VARCHAR"),
    "event_ts": ("TIMESTAMP WITH TIME ZONE",),
    "price": ("NUMERIC(12, 2)", "NUMERIC", "DOUBLE PRECISION", "REAL"),
    "quantity": ("INTEGER", "BIGINT", "SMALLINT"),
}
EVENT_COLUMNS = tuple(COLUMN_TYPES)
KEY_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "event_ts")
# Range checks skip NULLs (SQL comparisons do), so a NULL price or quantity needs a check of its own.
NOT_NULL_COLUMNS = (*KEY_COLUMNS, "price", "quantity")


@dataclass(frozen=True)
class Check:
    """One expectation of the gate. `explains` is the sentence a person reads when it fails."""

    name: str
    table: str
    column: str | None
    severity: Severity
    explains: str


CHECKS: tuple[Check, ...] = (
    Check("events.schema.columns", "events", None, "critical", "events lacks columns of the data contract"),
    *(
        Check(f"events.{column}.type", "events", column, "critical", f"events.{column} is not one of {types}")
        for column, types in COLUMN_TYPES.items()
    ),
    Check(
        "events.batch.not_empty",
        "events",
        None,
        "critical",
        "the batch is empty (zero events with this batch_date): the day's load did not arrive",
    ),
    Check(
        "events.volume.trailing_mean",
        "events",
        None,
        "warning",
        "the day's event count is outside the tolerance around its trailing mean",
    ),
    *(
        Check(f"events.{column}.not_null", "events", column, "critical", f"events with a null {column}")
        for column in NOT_NULL_COLUMNS
    ),
    Check("events.event_id.unique", "events", "event_id", "critical", "event ids repeated within the day"),
    Check(
        "events.event_id.unique_vs_earlier",
        "events",
        "event_id",
        "critical",
        "event ids already delivered by an earlier batch",
    ),
    Check("events.event_type.allowed", "events", "event_type", "critical", f"event types outside {EVENT_TYPES}"),
    Check("events.price.non_negative", "events", "price", "critical", "negative prices"),
    Check(
        "events.price.category_range",
        "events",
        "price",
        "critical",
        "prices outside their category's catalogue range (times/divided by price_factor)",
    ),
    Check(
        "events.quantity.min",
        "events",
        "quantity",
        "critical",
        "quantities below GateConfig.quantity_min (zero or negative: a return or a correction, not an event)",
    ),
    Check(
        "events.quantity.max",
        "events",
        "quantity",
        "critical",
        "quantities above GateConfig.quantity_max (a typo, or a unit mix-up such as grams for pieces)",
    ),
    Check(
        "events.event_ts.in_business_date",
        "events",
        "event_ts",
        "critical",
        "event timestamps outside the batch's business date [D, D+1) UTC",
    ),
    Check("events.user_id.references_users", "events", "user_id", "critical", "events of users not in users"),
    Check("events.item_id.references_items", "events", "item_id", "critical", "events of items not in items"),
)
CHECKS_BY_NAME: dict[str, Check] = {check.name: check for check in CHECKS}

"""The catalogue of the gate's checks: stable names, what each guards, and its default severity.

Stdlib only on purpose: configs and the DAG can name checks (for severity overrides) without importing
Great Expectations. `pipelines.quality.suite` turns each entry into a GX expectation. The `events` checks
guard the store's behaviour; the `impressions` and `outcomes` checks guard the delivery loop's logs, whose
propensities and click times every effect estimate rests on.
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


# The delivery contract (sql/011_delivery_sources.sql): what was shown, with its propensity, and what came of it.
IMPRESSION_COLUMNS = (
    "batch_date",
    "impression_id",
    "ts",
    "user_id",
    "placement",
    "position",
    "creative_id",
    "item_id",
    "campaign_id",
    "segment_id",
    "policy",
    "policy_version",
    "propensity",
    "arm",
)
IMPRESSION_KEYS = ("impression_id", "ts", "user_id", "placement", "policy", "propensity", "arm")
OUTCOME_COLUMNS = ("batch_date", "impression_id", "click_ts", "conversion_ts", "revenue")
# Every table the gate reads, with the columns its schema check requires.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": EVENT_COLUMNS,
    "impressions": IMPRESSION_COLUMNS,
    "outcomes": OUTCOME_COLUMNS,
}


@dataclass(frozen=True)
class Check:
    """One expectation of the gate. `explains` is the sentence a person reads when it fails."""

    name: str
    table: str
    column: str | None
    severity: Severity
    explains: str


# A day without impressions passes them all: a store that does not run the delivery loop loads none.
DELIVERY_CHECKS: tuple[Check, ...] = (
    Check(
        "impressions.schema.columns", "impressions", None, "critical", "impressions lacks columns of the data contract"
    ),
    *(
        Check(f"impressions.{column}.not_null", "impressions", column, "critical", f"impressions with a null {column}")
        for column in IMPRESSION_KEYS
    ),
    Check(
        "impressions.impression_id.unique",
        "impressions",
        "impression_id",
        "critical",
        "impression ids repeated within the day",
    ),
    Check(
        "impressions.impression_id.unique_vs_earlier",
        "impressions",
        "impression_id",
        "critical",
        "impression ids already delivered by an earlier batch",
    ),
    Check(
        "impressions.propensity.in_range",
        "impressions",
        "propensity",
        "critical",
        "propensities outside (0, 1]: what a policy could not have chosen cannot be evaluated off-policy",
    ),
    Check("impressions.arm.allowed", "impressions", "arm", "critical", "arms outside GateConfig.arms"),
    Check(
        "impressions.ts.in_business_date",
        "impressions",
        "ts",
        "critical",
        "impression timestamps outside the batch's business date [D, D+1) UTC",
    ),
    Check("outcomes.schema.columns", "outcomes", None, "critical", "outcomes lacks columns of the data contract"),
    Check(
        "outcomes.impression_id.not_null", "outcomes", "impression_id", "critical", "outcomes with a null impression_id"
    ),
    Check(
        "outcomes.impression_id.references_impressions",
        "outcomes",
        "impression_id",
        "critical",
        "outcomes that name no impression delivered up to the batch's day",
    ),
    Check(
        "outcomes.conversion.has_click",
        "outcomes",
        "conversion_ts",
        "critical",
        "conversions with no click on the same impression at or before them",
    ),
    Check(
        "outcomes.click_ts.after_impression",
        "outcomes",
        "click_ts",
        "critical",
        "clicks timed before the impression they name",
    ),
    Check("outcomes.revenue.non_negative", "outcomes", "revenue", "critical", "negative revenue"),
    *(
        Check(
            f"outcomes.{column}.not_after_batch",
            "outcomes",
            column,
            "critical",
            f"{column} after the end of the batch's business date (in its future)",
        )
        for column in ("click_ts", "conversion_ts")
    ),
    Check(
        "outcomes.attribution_window",
        "outcomes",
        None,
        "warning",
        "clicks later than click_window_hours or conversions later than conversion_window_days (the delivery "
        "stage's attribution window) after their impression: recorded, but no effect counts them",
    ),
)

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
    *DELIVERY_CHECKS,
)
CHECKS_BY_NAME: dict[str, Check] = {check.name: check for check in CHECKS}

"""Great Expectations expectations for one business date's batches, built from the catalogue.

Two suites per table (events, impressions, outcomes): `<table>_schema` runs on the table itself (column
types come from the catalogue, which a query cannot report), `<table>_batch` on the query
`<table> WHERE batch_date = D`. Checks that need other
tables (earlier batches, users, items) are `UnexpectedRowsExpectation`s whose SQL joins the batch to
them on the server; nothing is pulled into Python. Each expectation carries its catalogue name, table,
column and the context a reader needs in `meta`, and its severity in GX's own `severity` field (Data Docs
shows it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.delivery.config import DeliveryConfig
from pipelines.quality.checks import (
    CHECKS,
    COLUMN_TYPES,
    EVENT_TYPES,
    IMPRESSION_KEYS,
    NOT_NULL_COLUMNS,
    TABLE_COLUMNS,
    Check,
)
from pipelines.quality.config import GateConfig
from pipelines.quality.volume import VolumeBaseline
from pipelines.warehouse.reads import day_bounds

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

SCHEMA_SUITE = "schema"
BATCH_SUITE = "batch"
SCHEMA_CHECKS = frozenset(
    {*(f"{table}.schema.columns" for table in TABLE_COLUMNS), *(f"events.{column}.type" for column in COLUMN_TYPES)}
)


def batch_query(day: dt.date, table: str = "events") -> str:
    """The day's batch of a checked table. The date is a `datetime.date`, so its ISO form is safe to inline."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise TypeError(f"the business date must be a datetime.date, got {day!r}")
    if table not in TABLE_COLUMNS:
        raise ValueError(f"the gate checks {', '.join(TABLE_COLUMNS)}, not {table!r}")
    return f"SELECT * FROM {table} WHERE batch_date = DATE '{day.isoformat()}'"


def suite_of(check: Check) -> str:
    """`<table>_schema` or `<table>_batch`: the suite, and the GX asset, a check runs on."""
    return f"{check.table}_{SCHEMA_SUITE if check.name in SCHEMA_CHECKS else BATCH_SUITE}"


@dataclass(frozen=True)
class SuiteInputs:
    """Everything the expectations depend on besides the data: the date, the config, the volume history, and
    the delivery stage's attribution window (the one its effects count outcomes in)."""

    day: dt.date
    config: GateConfig
    baseline: VolumeBaseline
    delivery: DeliveryConfig = DeliveryConfig()  # noqa: RUF009 (frozen)


def _schema_columns(table: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectTableColumnsToMatchSet(column_set=list(TABLE_COLUMNS[table]), exact_match=False)

    return build


def _column_type(column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(COLUMN_TYPES[column]))

    return build


def _not_empty(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectTableRowCountToBeBetween(min_value=1, max_value=None)


def _volume(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    bounds = inputs.baseline.bounds(inputs.config.volume_tolerance)
    if bounds is None:  # no history yet: record the count, pass, and say why
        return gx.expectations.ExpectTableRowCountToBeBetween(min_value=0, max_value=None)
    return gx.expectations.ExpectTableRowCountToBeBetween(min_value=bounds[0], max_value=bounds[1])


def _not_null(column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToNotBeNull(column=column)

    return build


def _unique(column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToBeUnique(column=column)

    return build


def _unexpected_rows(query: str) -> Expectation:
    import great_expectations as gx

    return gx.expectations.UnexpectedRowsExpectation(unexpected_rows_query=query)


# Every query joins, so GX substitutes `{batch}` as a bare parenthesised subquery and we alias it `b`.
def _unique_vs_earlier(table: str, column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        return _unexpected_rows(
            f"""SELECT b.*, earlier.batch_date AS earlier_batch_date
FROM {{batch}} AS b
JOIN LATERAL (
    SELECT e.batch_date FROM {table} AS e
    WHERE e.{column} = b.{column} AND e.batch_date < DATE '{inputs.day.isoformat()}'
    ORDER BY e.batch_date LIMIT 1
) AS earlier ON true"""
        )

    return build


def _event_type(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES))


def _non_negative(column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToBeBetween(column=column, min_value=0)

    return build


def _category_price(inputs: SuiteInputs) -> Expectation:
    # Negative prices are the non-negative check's finding; this one looks only at the rest.
    factor = float(inputs.config.price_factor)
    return _unexpected_rows(
        f"""SELECT b.*, i.category, r.low AS category_low, r.high AS category_high
FROM {{batch}} AS b
JOIN items AS i ON i.item_id = b.item_id
JOIN (
    SELECT category, min(price) / {factor!r} AS low, max(price) * {factor!r} AS high
    FROM items GROUP BY category
) AS r ON r.category = i.category
WHERE b.price >= 0 AND (b.price < r.low OR b.price > r.high)"""
    )


def _quantity_min(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeBetween(column="quantity", min_value=inputs.config.quantity_min)


def _quantity_max(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeBetween(column="quantity", max_value=inputs.config.quantity_max)


def _in_business_date(column: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        start, end = day_bounds(inputs.day)
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=column, min_value=start, max_value=end, strict_max=True
        )

    return build


def _not_after_batch(column: str) -> Callable[[SuiteInputs], Expectation]:
    """An outcome may arrive days after it happened (a late conversion), never before."""

    def build(inputs: SuiteInputs) -> Expectation:
        import great_expectations as gx

        _, end = day_bounds(inputs.day)
        return gx.expectations.ExpectColumnValuesToBeBetween(column=column, max_value=end, strict_max=True)

    return build


def _propensity(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeBetween(column="propensity", min_value=0, max_value=1, strict_min=True)


def _arm(inputs: SuiteInputs) -> Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeInSet(column="arm", value_set=list(inputs.config.arms))


def _delivered_up_to(inputs: SuiteInputs) -> str:
    """Impressions the warehouse held at the end of the batch's day: outcomes may name any of them."""
    return f"SELECT impression_id, ts FROM impressions WHERE batch_date <= DATE '{inputs.day.isoformat()}'"


def _references_impressions(inputs: SuiteInputs) -> Expectation:
    return _unexpected_rows(
        f"""SELECT b.*
FROM {{batch}} AS b
LEFT JOIN ({_delivered_up_to(inputs)}) AS i ON i.impression_id = b.impression_id
WHERE b.impression_id IS NOT NULL AND i.impression_id IS NULL"""
    )


def _conversion_has_click(inputs: SuiteInputs) -> Expectation:
    # The click may have come in an earlier batch than its conversion (a row of its own).
    return _unexpected_rows(
        f"""SELECT b.*, c.first_click
FROM {{batch}} AS b
LEFT JOIN LATERAL (
    SELECT min(o.click_ts) AS first_click FROM outcomes AS o
    WHERE o.impression_id = b.impression_id AND o.batch_date <= DATE '{inputs.day.isoformat()}'
) AS c ON true
WHERE b.conversion_ts IS NOT NULL AND (c.first_click IS NULL OR c.first_click > b.conversion_ts)"""
    )


def _click_after_impression(inputs: SuiteInputs) -> Expectation:
    return _unexpected_rows(
        f"""SELECT b.*, i.ts AS impression_ts
FROM {{batch}} AS b
JOIN ({_delivered_up_to(inputs)}) AS i ON i.impression_id = b.impression_id
WHERE b.click_ts < i.ts"""
    )


def _attribution_window(inputs: SuiteInputs) -> Expectation:
    hours, days = float(inputs.delivery.click_window_hours), float(inputs.delivery.conversion_window_days)
    return _unexpected_rows(
        f"""SELECT b.*, i.ts AS impression_ts
FROM {{batch}} AS b
JOIN ({_delivered_up_to(inputs)}) AS i ON i.impression_id = b.impression_id
WHERE b.click_ts > i.ts + make_interval(secs => {hours * 3600!r})
   OR b.conversion_ts > i.ts + make_interval(secs => {days * 86400!r})"""
    )


def _references(column: str, table: str) -> Callable[[SuiteInputs], Expectation]:
    def build(inputs: SuiteInputs) -> Expectation:
        return _unexpected_rows(
            f"""SELECT b.*
FROM {{batch}} AS b
LEFT JOIN {table} AS ref ON ref.{column} = b.{column}
WHERE b.{column} IS NOT NULL AND ref.{column} IS NULL"""
        )

    return build


BUILDERS: dict[str, Callable[[SuiteInputs], Expectation]] = {
    "events.schema.columns": _schema_columns("events"),
    **{f"events.{column}.type": _column_type(column) for column in COLUMN_TYPES},
    "events.batch.not_empty": _not_empty,
    "events.volume.trailing_mean": _volume,
    **{f"events.{column}.not_null": _not_null(column) for column in NOT_NULL_COLUMNS},
    "events.event_id.unique": _unique("event_id"),
    "events.event_id.unique_vs_earlier": _unique_vs_earlier("events", "event_id"),
    "events.event_type.allowed": _event_type,
    "events.price.non_negative": _non_negative("price"),
    "events.price.category_range": _category_price,
    "events.quantity.min": _quantity_min,
    "events.quantity.max": _quantity_max,
    "events.event_ts.in_business_date": _in_business_date("event_ts"),
    "events.user_id.references_users": _references("user_id", "users"),
    "events.item_id.references_items": _references("item_id", "items"),
    "impressions.schema.columns": _schema_columns("impressions"),
    **{f"impressions.{column}.not_null": _not_null(column) for column in IMPRESSION_KEYS},
    "impressions.impression_id.unique": _unique("impression_id"),
    "impressions.impression_id.unique_vs_earlier": _unique_vs_earlier("impressions", "impression_id"),
    "impressions.propensity.in_range": _propensity,
    "impressions.arm.allowed": _arm,
    "impressions.ts.in_business_date": _in_business_date("ts"),
    "outcomes.schema.columns": _schema_columns("outcomes"),
    "outcomes.impression_id.not_null": _not_null("impression_id"),
    "outcomes.impression_id.references_impressions": _references_impressions,
    "outcomes.conversion.has_click": _conversion_has_click,
    "outcomes.click_ts.after_impression": _click_after_impression,
    "outcomes.revenue.non_negative": _non_negative("revenue"),
    "outcomes.click_ts.not_after_batch": _not_after_batch("click_ts"),
    "outcomes.conversion_ts.not_after_batch": _not_after_batch("conversion_ts"),
    "outcomes.attribution_window": _attribution_window,
}


# What a reader needs beside the observed value to judge a result (the bar it was held to): kept in the
# expectation's meta and notes, so dq_results and Data Docs both show it.
CONTEXT: dict[str, Callable[[SuiteInputs], dict[str, Any]]] = {
    "events.volume.trailing_mean": lambda inputs: inputs.baseline.describe(inputs.config.volume_tolerance),
    "events.quantity.min": lambda inputs: {"quantity_min": inputs.config.quantity_min},
    "events.quantity.max": lambda inputs: {"quantity_max": inputs.config.quantity_max},
    "impressions.arm.allowed": lambda inputs: {"arms": list(inputs.config.arms)},
    "outcomes.attribution_window": lambda inputs: {
        "click_window_hours": inputs.delivery.click_window_hours,
        "conversion_window_days": inputs.delivery.conversion_window_days,
    },
}


def build_expectations(inputs: SuiteInputs) -> dict[str, list[Expectation]]:
    """Suite name -> expectations, in catalogue order, each tagged with its check and severity."""
    suites: dict[str, list[Expectation]] = {}
    for check in CHECKS:
        expectation = BUILDERS[check.name](inputs)
        meta: dict[str, Any] = {"name": check.name, "table": check.table, "column": check.column}
        notes = [f"{check.name}: fails on {check.explains}."]
        if check.name in CONTEXT:
            meta["context"] = CONTEXT[check.name](inputs)
            notes += [f"{key}: {value}" for key, value in meta["context"].items()]
        expectation.meta = meta
        expectation.notes = notes
        expectation.severity = inputs.config.severity_of(check.name)
        suites.setdefault(suite_of(check), []).append(expectation)
    return suites

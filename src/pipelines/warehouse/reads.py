"""As-of reads: what the warehouse knew at the end of a business date, never anything later.

Business dates are UTC days. `as_of` means "every event with event_ts before the next midnight UTC":
training, evaluation and generation for a date (including in a backfill) never see a later event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    import pandas as pd


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a business date in UTC."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def read_frame(engine: Engine, query: str, params: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Run a parameterised SELECT and return a DataFrame."""
    import pandas as pd

    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(query), conn, params=dict(params or {}))


def events_as_of(
    engine: Engine,
    as_of: dt.date,
    *,
    since: dt.date | None = None,
    event_types: Sequence[str] | None = None,
    columns: Sequence[str] = (
        "event_id",
        "user_id",
        "item_id",
        "event_type",
        "event_ts",
        "price",
        "quantity",
    ),
) -> pd.DataFrame:
    """Events up to the end of `as_of` (and from the start of `since`), in time order."""
    _, end = day_bounds(as_of)
    clauses = ["event_ts < :end"]
    params: dict[str, object] = {"end": end}
    if since is not None:
        clauses.append("event_ts >= :start")
        params["start"] = day_bounds(since)[0]
    if event_types is not None:
        clauses.append("event_type = ANY(:types)")
        params["types"] = list(event_types)
    cols = ", ".join(_identifier(c) for c in columns)
    query = f"SELECT {cols} FROM events WHERE {' AND '.join(clauses)} ORDER BY event_ts, event_id"
    return read_frame(engine, query, params)


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a column name: {name!r}")
    return f'"{name}"'


def events_on(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The events of one business date."""
    return events_as_of(engine, day, since=day)

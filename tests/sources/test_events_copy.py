"""Events through the generic binary COPY: edge values of every events column come back unchanged."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from pipelines.warehouse.binary_copy import binary_encoders, column_types, encode_frame
from pipelines.warehouse.partitions import copy_frames
from pipelines.warehouse.reads import read_frame

pytestmark = pytest.mark.integration


def _events(prices: list[float], types: list[str]) -> pd.DataFrame:
    n = len(prices)
    stamps = pd.to_datetime(
        ["1999-12-31 23:59:59.5", "2026-06-30 00:00:00", "2026-06-30 23:59:59.999999", "2038-01-19 03:14:08"][:n],
        utc=True,
        format="ISO8601",
    )
    return pd.DataFrame(
        {
            "batch_date": [d.date() for d in stamps],
            "event_id": [1, 2, 3, 2**40][:n],
            "user_id": [7, 2**62, 9, 10][:n],
            "item_id": [3, 3, 1, 5][:n],
            "event_type": types,
            "event_ts": stamps,
            "price": prices,
            "quantity": [1, 2, 3, 2**31 - 1][:n],
        }
    )


def test_events_round_trip_edge_values_in_binary(engine: Engine) -> None:
    frame = _events([0.0, 0.01, 9_999_999_999.99, -12.5], ["view", "purchase", "view", "wishlist-añadido"])
    with engine.begin() as conn:
        encoders = binary_encoders(column_types(conn.connection.dbapi_connection.cursor(), "events"))
        assert encode_frame(frame, "events", encoders) is not None  # every events column has a binary encoding
        written = copy_frames(conn, "events", [frame.iloc[:2], frame.iloc[2:]])
    assert written == 4
    back = read_frame(engine, "SELECT *, price::text AS price_text FROM events ORDER BY event_id")
    assert list(back["event_id"]) == list(frame["event_id"]) and list(back["user_id"]) == list(frame["user_id"])
    assert list(back["price_text"]) == ["0.00", "0.01", "9999999999.99", "-12.50"]
    assert list(back["event_type"]) == list(frame["event_type"])
    assert list(back["batch_date"]) == [
        dt.date(1999, 12, 31),
        dt.date(2026, 6, 30),
        dt.date(2026, 6, 30),
        dt.date(2038, 1, 19),
    ]
    assert (pd.to_datetime(back["event_ts"], utc=True) == frame["event_ts"]).all()
    assert list(back["quantity"]) == list(frame["quantity"])

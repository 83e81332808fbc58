"""Binary COPY of events: what goes in comes back out, and the prefetching thread hands errors over."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from pipelines.sources.binary_copy import copy_events, encode_events, prefetch
from pipelines.warehouse.reads import read_frame


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


@pytest.mark.integration
def test_binary_copy_round_trips_edge_values(engine: Engine) -> None:
    frame = _events([0.0, 0.01, 9_999_999_999.99, -12.5], ["view", "purchase", "view", "wishlist-añadido"])
    with engine.begin() as conn:
        written = copy_events(conn, [frame.iloc[:2], frame.iloc[2:]])
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


def test_encoding_refuses_nulls_and_naive_timestamps() -> None:
    frame = _events([1.0, 2.0], ["view", "cart"])
    with pytest.raises(ValueError, match="nulls"):
        encode_events(frame.assign(user_id=[1, None]))
    with pytest.raises(ValueError, match="timezone"):
        encode_events(frame.assign(event_ts=frame["event_ts"].dt.tz_localize(None)))


def test_prefetch_reraises_the_producers_error_and_stops_when_the_consumer_stops() -> None:
    def failing():  # noqa: ANN202
        yield 1
        raise KeyError("producer broke")

    with pytest.raises(KeyError, match="producer broke"):
        list(prefetch(failing()))
    produced: list[int] = []

    def endless():  # noqa: ANN202
        for i in range(10**9):
            produced.append(i)
            yield i

    before = threading.active_count()
    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before  # the worker thread has finished
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in the queue, in hand: never runs ahead unbounded

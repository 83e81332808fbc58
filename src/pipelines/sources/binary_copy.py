"""COPY of event rows in PostgreSQL's binary format, encoded with NumPy, overlapped with the server's work.

Why not the CSV path (warehouse.partitions.copy_frames) for events: on 2 cores, pandas' CSV writer
(~4 us a row) plus the server's CSV parsing, one after the other, reach about a third of `psql \\copy`.
Binary rows are fixed-size records per event type, so NumPy writes a whole chunk in one pass (< 2 us
a row) and the server skips text parsing; a background thread generates and encodes the next chunk
while the server ingests the current one. The other source tables are small and keep using CSV.

The encoding follows the column types of sql/001_source_tables.sql (date, bigint, text, timestamptz,
numeric, integer); a type change there makes COPY fail loudly ("incorrect binary data format").
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

T = TypeVar("T")

COLUMNS = ("batch_date", "event_id", "user_id", "item_id", "event_type", "event_ts", "price", "quantity")
HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01: PostgreSQL counts dates and times from 2000
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
NUMERIC_NEG = 0x4000
READ_SIZE = 1 << 20  # bytes handed to libpq per call: few GIL hand-overs with the encoding thread


def _row_dtype(type_bytes: int) -> np.dtype:
    import numpy as np

    fields = [("nfields", ">i2")]
    for name, kind in (("batch_date", ">i4"), ("event_id", ">i8"), ("user_id", ">i8"), ("item_id", ">i8")):
        fields += [(f"{name}_len", ">i4"), (name, kind)]
    fields += [("event_type_len", ">i4"), ("event_type", f"S{type_bytes}")]
    fields += [("event_ts_len", ">i4"), ("event_ts", ">i8")]
    # numeric: ndigits, weight, sign, dscale, then base-10000 digits (here 3 integer groups + cents).
    fields += [("price_len", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">i2"), ("dscale", ">i2")]
    fields += [("d0", ">i2"), ("d1", ">i2"), ("d2", ">i2"), ("d3", ">i2")]
    fields += [("quantity_len", ">i4"), ("quantity", ">i4")]
    return np.dtype(fields)


def encode_events(frame: pd.DataFrame) -> bytes:
    """The rows of an events frame as COPY binary records (no header or trailer).

    Rows are grouped by event type (each type is one fixed-size record); event ids are unchanged.
    """
    import numpy as np
    import pandas as pd

    if frame[list(COLUMNS)].isna().any().any():
        raise ValueError("binary COPY of events needs every column filled; this frame has nulls")
    days = pd.to_datetime(frame["batch_date"]).to_numpy("datetime64[D]").astype(np.int64) - PG_EPOCH_DAYS
    stamps = frame["event_ts"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError("events.event_ts must be timezone-aware")
    micros = stamps.dt.tz_convert("UTC").to_numpy("datetime64[us]").astype(np.int64) - PG_EPOCH_US
    cents = np.round(frame["price"].to_numpy(np.float64) * 100).astype(np.int64)
    if (np.abs(cents) >= 10**12).any():
        raise ValueError("events.price exceeds numeric(12, 2)")
    whole, fraction = np.divmod(np.abs(cents), 100)
    kinds = frame["event_type"].to_numpy(object)
    parts = []
    for kind in pd.unique(kinds):
        rows = np.flatnonzero(kinds == kind)
        encoded = str(kind).encode()
        out = np.empty(len(rows), dtype=_row_dtype(len(encoded)))
        out["nfields"] = len(COLUMNS)
        for name, size in (("batch_date", 4), ("event_id", 8), ("user_id", 8), ("item_id", 8), ("event_ts", 8)):
            out[f"{name}_len"] = size
        out["event_type_len"] = len(encoded)
        out["quantity_len"] = 4
        out["price_len"] = 16
        out["batch_date"] = days[rows]
        out["event_id"] = frame["event_id"].to_numpy(np.int64)[rows]
        out["user_id"] = frame["user_id"].to_numpy(np.int64)[rows]
        out["item_id"] = frame["item_id"].to_numpy(np.int64)[rows]
        out["event_type"] = encoded
        out["event_ts"] = micros[rows]
        out["ndigits"], out["weight"], out["dscale"] = 4, 2, 2
        out["sign"] = np.where(cents[rows] < 0, NUMERIC_NEG, 0)
        w = whole[rows]
        out["d0"], out["d1"], out["d2"] = w // 10**8, (w // 10**4) % 10**4, w % 10**4
        out["d3"] = fraction[rows] * 100
        out["quantity"] = frame["quantity"].to_numpy(np.int64)[rows]
        parts.append(out.tobytes())
    return b"".join(parts)


def copy_events(conn: Connection, frames: Iterable[pd.DataFrame], on_frame: Callable[[int], None] | None = None) -> int:
    """COPY events frames on the caller's transaction, one binary COPY per frame. Returns the row count.

    Frames are produced and encoded one ahead, in a background thread, while the server ingests.
    """
    from psycopg2 import sql

    statement = sql.SQL("COPY events ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    written = 0
    try:
        for rows, payload in prefetch((len(f), HEADER + encode_events(f) + TRAILER) for f in frames if len(f)):
            cursor.copy_expert(statement, io.BytesIO(payload), size=READ_SIZE)
            written += rows
            if on_frame is not None:
                on_frame(rows)
    finally:
        cursor.close()
    return written


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a background thread, up to `depth` ahead; its exceptions re-raise here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put((done, exc))

    worker = threading.Thread(target=produce, name="copy-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()

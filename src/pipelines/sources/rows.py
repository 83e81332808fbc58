"""Row-by-row parsing into frames of bounded size, for the loaders that validate files while streaming."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

EVENT_COLUMNS = ("batch_date", "event_id", "user_id", "item_id", "event_type", "event_ts", "price", "quantity")
EPOCH = dt.date(1970, 1, 1)


class EventBuffer:
    """Collects parsed events column by column and hands them out as frames of `chunk_rows` rows.

    Times are kept as whole seconds since the epoch (UTC), so no datetime object is built per row.
    """

    def __init__(self, chunk_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self._columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}

    def __len__(self) -> int:
        return len(self._columns["event_id"])

    def add(
        self,
        day: dt.date,
        event_id: int,
        user_id: int,
        item_id: int,
        event_type: str,
        second_of_day: int,
        price: float,
        quantity: int,
    ) -> None:
        values = (day, event_id, user_id, item_id, event_type, second_of_day, price, quantity)
        for column, value in zip(self._columns.values(), values, strict=True):
            column.append(value)

    def full(self) -> bool:
        return len(self) >= self.chunk_rows

    def flush(self) -> Iterator[pd.DataFrame]:
        """Yield the buffered rows as one frame (nothing when empty) and start over."""
        if not len(self):
            return
        import numpy as np
        import pandas as pd

        c = self._columns
        days = np.array([(d - EPOCH).days for d in c["batch_date"]], dtype="int64").astype("datetime64[D]")
        seconds = days.astype("datetime64[s]") + np.array(c["event_ts"], dtype="int64").astype("timedelta64[s]")
        frame = pd.DataFrame(
            {
                "batch_date": np.datetime_as_string(days).astype(object),
                "event_id": np.array(c["event_id"], dtype=np.int64),
                "user_id": np.array(c["user_id"], dtype=np.int64),
                "item_id": np.array(c["item_id"], dtype=np.int64),
                "event_type": np.array(c["event_type"], dtype=object),
                "event_ts": pd.DatetimeIndex(seconds).tz_localize("UTC"),
                "price": np.array(c["price"], dtype=np.float64),
                "quantity": np.array(c["quantity"], dtype=np.int32),
            }
        )
        self._columns = {name: [] for name in EVENT_COLUMNS}
        yield frame


def frame_of(columns: Sequence[str], rows: list[tuple]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(rows, columns=list(columns))

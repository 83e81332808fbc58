"""Ta-Feng grocery transactions (Nov 2000 - Feb 2001) -> users, items, events (purchases).

The file is the Kaggle "ta-feng-grocery-dataset" merged CSV (or a zip holding only it): quoted fields,
UTF-8 with BOM, header TRANSACTION_DT (M/D/YYYY), CUSTOMER_ID, AGE_GROUP, PIN_CODE, PRODUCT_SUBCLASS,
PRODUCT_ID, AMOUNT, ASSET, SALES_PRICE. Mapping:

- events: one purchase per line, event_id = the data line's number (1 = first row after the header),
  quantity = AMOUNT, price = unit price = SALES_PRICE / AMOUNT (rounded to cents);
- event_ts: the data has dates only. A customer's lines of one day are one basket, placed at a time
  between 09:00 and 21:00 UTC picked by crc32(customer, date); its k-th line is k seconds later, so
  the file's order inside the basket is kept and a reload gives the same timestamps;
- users: user_id = CUSTOMER_ID, signup_date = the first purchase date, age_group = AGE_GROUP,
  region = PIN_CODE (residence area code, e.g. "115" or "Others") of the customer's first line;
- items: item_id = PRODUCT_ID (EAN-like, fits bigint), category = PRODUCT_SUBCLASS of its first line,
  price = mean unit price over all its lines, title "Product <id> (subclass <subclass>)".

Every line is validated while streaming; the first bad one raises SourceFormatError (file, line,
reason) and, as the load is one transaction, nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.engine import Engine

from pipelines.errors import SourceFormatError
from pipelines.sources.load import LoadSummary, replace_source_tables
from pipelines.sources.rows import EventBuffer, frame_of

if TYPE_CHECKING:
    import pandas as pd

HEADER = (
    "TRANSACTION_DT",
    "CUSTOMER_ID",
    "AGE_GROUP",
    "PIN_CODE",
    "PRODUCT_SUBCLASS",
    "PRODUCT_ID",
    "AMOUNT",
    "ASSET",
    "SALES_PRICE",
)
OPENING_S, OPEN_HOURS_S = 9 * 3600, 12 * 3600  # baskets start between 09:00 and 21:00 UTC


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """The CSV as text: a plain file, or the one member of a zip archive."""
    if not path.exists():
        raise SourceFormatError(path, None, "no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise SourceFormatError(path, None, f"expected one CSV in the zip, found {len(members)}")
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    else:
        with path.open(encoding="utf-8-sig", newline="") as text:
            yield text


class _Parser:
    """Validates lines and accumulates users and items while events stream out."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        self.users: dict[int, list] = {}  # id -> [first date, age group, pin code]
        self.items: dict[int, list] = {}  # id -> [subclass, sum of unit prices, count]
        self._dates: dict[str, dt.date] = {}
        self._basket_lines: dict[tuple[int, dt.date], int] = {}

    def fail(self, line: int | None, reason: str) -> SourceFormatError:
        return SourceFormatError(self.path, line, reason)

    def events(self) -> Iterator[pd.DataFrame]:
        buffer = EventBuffer(self.chunk_rows)
        with open_text(self.path) as text:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                raise self.fail(1, f"the file is empty; expected the header {','.join(HEADER)}")
            if tuple(h.strip() for h in header) != HEADER:
                raise self.fail(1, f"expected the header {','.join(HEADER)}, got {','.join(header)}")
            event_id = 0
            try:
                for row in reader:
                    event_id += 1
                    self._row(buffer, reader.line_num, event_id, row)
                    if buffer.full():
                        yield from buffer.flush()
            except csv.Error as exc:
                raise self.fail(reader.line_num, f"not valid CSV: {exc}") from None
            if event_id == 0:
                raise self.fail(2, "no data rows after the header")
        yield from buffer.flush()

    def _row(self, buffer: EventBuffer, line: int, event_id: int, row: list[str]) -> None:
        if len(row) != len(HEADER):
            raise self.fail(line, f"expected {len(HEADER)} columns, got {len(row)}")
        day = self._date(line, row[0])
        customer = self._int(line, "CUSTOMER_ID", row[1])
        product = self._int(line, "PRODUCT_ID", row[5])
        amount = self._int(line, "AMOUNT", row[6])
        if amount < 1:
            raise self.fail(line, f"AMOUNT must be at least 1, got {amount}")
        sales = self._number(line, "SALES_PRICE", row[8])
        subclass = row[4].strip()
        if not subclass:
            raise self.fail(line, "PRODUCT_SUBCLASS is empty")
        unit_price = round(sales / amount, 2)
        basket = (customer, day)
        k = self._basket_lines.get(basket, 0)
        self._basket_lines[basket] = k + 1
        second = OPENING_S + zlib.crc32(f"{customer}|{day.isoformat()}".encode()) % OPEN_HOURS_S + k
        if second >= 86_400:
            raise self.fail(line, f"customer {customer} has more than 3 hours' worth of lines on {day}")
        buffer.add(day, event_id, customer, product, "purchase", second, unit_price, amount)
        user = self.users.get(customer)
        if user is None:
            self.users[customer] = [day, row[2].strip() or None, row[3].strip() or None]
        elif day < user[0]:
            user[0] = day
        item = self.items.get(product)
        if item is None:
            self.items[product] = [subclass, unit_price, 1]
        else:
            item[1] += unit_price
            item[2] += 1

    def _date(self, line: int, text: str) -> dt.date:
        day = self._dates.get(text)
        if day is None:
            try:
                month, dom, year = (int(part) for part in text.split("/"))
                day = dt.date(year, month, dom)
            except ValueError:
                raise self.fail(line, f"TRANSACTION_DT {text!r} is not a date like 11/1/2000 (M/D/YYYY)") from None
            self._dates[text] = day
        return day

    def _int(self, line: int, column: str, text: str) -> int:
        text = text.strip()
        if not (text.isascii() and text.isdigit()):
            raise self.fail(line, f"{column} {text!r} is not a non-negative integer")
        return int(text)

    def _number(self, line: int, column: str, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.fail(line, f"{column} {text!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise self.fail(line, f"{column} must be a non-negative number, got {text!r}")
        return value

    def users_frame(self) -> pd.DataFrame:
        rows = [(uid, first.isoformat(), age, pin) for uid, (first, age, pin) in self.users.items()]
        return frame_of(("user_id", "signup_date", "age_group", "region"), rows)

    def items_frame(self) -> pd.DataFrame:
        rows = [
            (iid, subclass, round(total / count, 2), f"Product {iid} (subclass {subclass})")
            for iid, (subclass, total, count) in self.items.items()
        ]
        return frame_of(("item_id", "category", "price", "title"), rows)


def load_tafeng(engine: Engine, path: Path, *, chunk_rows: int = 100_000) -> LoadSummary:
    """Replace the source tables with the Ta-Feng file at `path` (.csv or .csv.zip)."""
    parser = _Parser(Path(path), chunk_rows)

    def tables() -> Iterator[tuple[str, Iterator[pd.DataFrame] | list[pd.DataFrame]]]:
        yield "events", parser.events()
        # Users and items are complete only once every event line has been read.
        yield "users", [parser.users_frame()]
        yield "items", [parser.items_frame()]

    return replace_source_tables(engine, f"Ta-Feng {Path(path).name}", tables())

"""Ta-Feng and Amazon (S3-Rec) loaders on small files the tests write, and on malformed ones."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from pipelines.errors import SourceFormatError
from pipelines.sources import TINY_STORE, load_amazon, load_synthetic_store, load_tafeng
from pipelines.warehouse.reads import read_frame
from tests.sources.fixtures import table_counts

pytestmark = pytest.mark.integration

HEADER = (
    '"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE",'
    '"PRODUCT_SUBCLASS","PRODUCT_ID","AMOUNT","ASSET","SALES_PRICE"'
)
TAFENG_ROWS = [
    '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"',
    '"11/1/2000","00418683","45-49","115","120107","4710857472535","1","48","46"',
    '"11/1/2000","01104905","45-49","115","100407","4710043654103","2","142","166"',
    '"11/2/2000","01104905","45-49","115","110411","4710199010372","1","12","16"',
    '"2/28/2001","00418683","45-49","Others","120107","4710857472535","3","144","150"',
]
# A small store that a failed load must leave in place.
PREVIOUS = dataclasses.replace(TINY_STORE, users=20, items=10, days=2, campaigns=1)


def _tafeng(tmp_path: Path, rows: list[str], *, header: str | None = HEADER, name: str = "ta_feng.csv") -> Path:
    path = tmp_path / name
    lines = ([header] if header is not None else []) + rows
    path.write_text("\ufeff" + "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def test_tafeng_maps_customers_products_and_purchases(engine: Engine, tmp_path: Path) -> None:
    csv_path = _tafeng(tmp_path, TAFENG_ROWS)
    archive = tmp_path / "ta_feng.csv.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(csv_path, "ta_feng_all_months_merged.csv")
    summary = load_tafeng(engine, archive)
    assert dict(summary.rows) == {"users": 2, "items": 3, "item_images": 0, "events": 5, "campaigns": 0}
    events = read_frame(engine, "SELECT * FROM events ORDER BY event_id")
    assert list(events["event_id"]) == [1, 2, 3, 4, 5]
    assert list(events["price"].astype(float)) == [15.0, 46.0, 83.0, 16.0, 50.0]  # SALES_PRICE / AMOUNT
    assert list(events["quantity"]) == [2, 1, 2, 1, 3] and set(events["event_type"]) == {"purchase"}
    assert list(events["batch_date"]) == [dt.date(2000, 11, 1)] * 3 + [dt.date(2000, 11, 2), dt.date(2001, 2, 28)]
    ts = pd.to_datetime(events["event_ts"], utc=True)
    assert (ts.dt.date == events["batch_date"]).all() and ts.dt.hour.between(9, 20).all()
    # One basket per customer and day: its lines one second apart, in file order.
    assert (ts[2] - ts[0]).total_seconds() == 1
    users = read_frame(engine, "SELECT * FROM users ORDER BY user_id").set_index("user_id")
    assert users.loc[1104905, "signup_date"] == dt.date(2000, 11, 1)
    assert users.loc[418683, "region"] == "115" and users.loc[418683, "age_group"] == "45-49"
    items = read_frame(engine, "SELECT * FROM items").set_index("item_id")
    assert float(items.loc[4710199010372, "price"]) == 15.5  # mean unit price of 15 and 16
    assert items.loc[4710857472535, "category"] == "120107"
    assert "4710043654103" in items.loc[4710043654103, "title"]
    again = load_tafeng(engine, csv_path)  # the plain CSV loads the same rows again
    assert again.rows == summary.rows
    pd.testing.assert_frame_equal(read_frame(engine, "SELECT * FROM events ORDER BY event_id"), events)


@pytest.mark.parametrize(
    ("rows", "header", "line", "reason"),
    [
        (
            TAFENG_ROWS[:2] + ['"11/31/2000","01104905","45-49","115","110411","4710199010372","2","24","30"'],
            HEADER,
            4,
            "TRANSACTION_DT",
        ),
        (TAFENG_ROWS[:1] + ['"11/1/2000","01104905","45-49","115","110411","4710199010372","2"'], HEADER, 3, "columns"),
        (
            TAFENG_ROWS[:3] + ['"11/1/2000","A1104905","45-49","115","110411","4710199010372","2","24","30"'],
            HEADER,
            5,
            "CUSTOMER_ID",
        ),
        ([], None, 1, "empty"),
        ([], HEADER, 2, "no data rows"),
        (TAFENG_ROWS, '"DATE","CUSTOMER"', 1, "header"),
    ],
    ids=["bad-date", "column-count", "non-numeric-id", "empty-file", "header-only", "wrong-header"],
)
def test_malformed_tafeng_names_file_and_line_and_loads_nothing(
    engine: Engine, tmp_path: Path, rows: list[str], header: str | None, line: int, reason: str
) -> None:
    load_synthetic_store(engine, PREVIOUS, None)
    before = table_counts(engine)
    path = _tafeng(tmp_path, rows, header=header)
    with pytest.raises(SourceFormatError, match=reason) as caught:
        load_tafeng(engine, path, chunk_rows=2)  # small chunks: earlier rows were already sent to COPY
    assert caught.value.path == str(path) and caught.value.line == line
    assert f"line {line}" in str(caught.value) and str(path) in str(caught.value)
    assert table_counts(engine) == before


def _sequences(tmp_path: Path, text: str, name: str = "Beauty.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_amazon_sequences_become_daily_purchases_ending_on_the_anchor(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "amazon-beauty"
    folder.mkdir()
    (folder / "README.txt").write_text("not the data")
    _sequences(folder, "1 10 11 12\n2 11 13\n")
    anchor = dt.date(2026, 3, 31)
    summary = load_amazon(engine, folder, anchor_date=anchor)
    assert dict(summary.rows) == {"users": 2, "items": 4, "item_images": 0, "events": 5, "campaigns": 0}
    events = read_frame(engine, "SELECT * FROM events ORDER BY event_id")
    assert list(events["user_id"]) == [1, 1, 1, 2, 2] and list(events["item_id"]) == [10, 11, 12, 11, 13]
    day = dt.timedelta(days=1)
    assert list(events["batch_date"]) == [anchor - 2 * day, anchor - day, anchor, anchor - day, anchor]
    assert (pd.to_datetime(events["event_ts"], utc=True).dt.date == events["batch_date"]).all()
    assert set(events["event_type"]) == {"purchase"} and (events["price"] == 0).all()
    items = read_frame(engine, "SELECT * FROM items ORDER BY item_id")
    assert list(items["item_id"]) == [10, 11, 12, 13] and set(items["category"]) == {"beauty"}
    users = read_frame(engine, "SELECT * FROM users ORDER BY user_id")
    assert list(users["signup_date"]) == [anchor - 2 * day, anchor - day]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("1 10 11\n2\n", 2, "field"),
        ("1 10 11\n2 11 x3\n", 2, "not a positive integer"),
        ("1 10 11\nuser 11 12\n", 2, "not a positive integer"),
        ("", 1, "empty"),
        ("1 10 11\n2 11\n1 12\n", 3, "appears again"),
    ],
    ids=["column-count", "non-numeric-item", "non-numeric-user", "empty-file", "duplicate-user"],
)
def test_malformed_amazon_names_file_and_line_and_loads_nothing(
    engine: Engine, tmp_path: Path, text: str, line: int, reason: str
) -> None:
    load_synthetic_store(engine, PREVIOUS, None)
    before = table_counts(engine)
    path = _sequences(tmp_path, text)
    with pytest.raises(SourceFormatError, match=reason) as caught:
        load_amazon(engine, path, chunk_rows=1)
    assert caught.value.path == str(path) and caught.value.line == line
    assert table_counts(engine) == before

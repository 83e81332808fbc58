"""Binary COPY: every supported type round-trips, other columns take CSV, and bad values fail cleanly."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.partitions import copy_frames, replace_partition

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 14)
UTC = dt.UTC


@pytest.fixture
def typed(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            """CREATE TABLE typed (
                 i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, b boolean, d date,
                 tz timestamptz, ts timestamp, t text, v varchar(8), n numeric(12, 2), small numeric(5, 4))"""
        )
    return engine


def _typed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i2": pd.array([-32768, 32767, None, 0], dtype="Int16"),
            "i4": [-(2**31), 2**31 - 1, 7, -1],
            "i8": [-(2**63), 2**63 - 1, 0, 42],
            "f4": [-1.5, 3.25e38, np.nan, 0.1],
            "f8": [-1e-300, 1.7e308, 2.5, np.nan],
            "b": [True, False, None, True],
            "d": [dt.date(1, 1, 1), dt.date(1999, 12, 31), None, dt.date(2026, 3, 14)],
            "tz": pd.to_datetime(
                ["1969-12-31 23:59:59.999999", "1999-12-31 23:59:59.5", None, "2026-03-14 12:00:00.000001"],
                format="ISO8601",
            ).tz_localize("UTC"),
            "ts": pd.to_datetime(
                ["1900-01-01 00:00:00.000001", None, "2000-01-01", "2038-01-19 03:14:08"], format="ISO8601"
            ),
            "t": ["model", "model", None, "naïve ünïcode"],
            "v": ["", "a", "a", None],
            "n": [-9_999_999_999.99, 0.01, None, -0.004],
            "small": [0.0001, -9.9999, 1.23456, None],
        }
    )


def _back(engine: Engine, query: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query))]


def _formats(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if r.getMessage().startswith("COPY ")]


def test_every_supported_type_round_trips_through_binary_copy(typed: Engine, caplog: pytest.LogCaptureFixture) -> None:
    frame = _typed_frame()
    with caplog.at_level(logging.DEBUG, logger="pipelines.warehouse.partitions"), typed.begin() as conn:
        assert copy_frames(conn, "typed", [frame.iloc[:2], frame.iloc[2:]]) == 4
    assert _formats(caplog) == ["binary", "binary"]
    rows = _back(typed, "SELECT i2, i4, i8, f4, f8, b, d, tz, ts, t, v, n::text, small::text FROM typed ORDER BY i4")
    assert rows == [
        (
            -32768,
            -(2**31),
            -(2**63),
            -1.5,
            -1e-300,
            True,
            dt.date(1, 1, 1),
            dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            dt.datetime(1900, 1, 1, 0, 0, 0, 1),
            "model",
            "",
            "-9999999999.99",
            "0.0001",
        ),
        (0, -1, 42, pytest.approx(0.1), None, True, DAY, dt.datetime(2026, 3, 14, 12, 0, 0, 1, tzinfo=UTC))
        + (dt.datetime(2038, 1, 19, 3, 14, 8), "naïve ünïcode", None, "0.00", None),
        (None, 7, 0, None, 2.5, None, None, None, dt.datetime(2000, 1, 1), None, "a", None, "1.2346"),
        (32767, 2**31 - 1, 2**63 - 1, pytest.approx(3.25e38), 1.7e308, False, dt.date(1999, 12, 31))
        + (dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), None, "model", "a", "0.01", "-9.9999"),
    ]


def test_replace_partition_writes_every_text_group_once(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    n = 3_000
    sources = np.array(["model", "segment_popularity", "global_popularity"])[np.arange(n) % 3]
    frame = pd.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64) // 20,
            "rank": (np.arange(n) % 20 + 1).astype(np.int16),
            "item_id": np.arange(n, dtype=np.int64) * 7,
            "score": np.linspace(-1, 1, n, dtype=np.float32),
            "source": sources,
            "model_version": np.where(np.arange(n) < n // 2, "v1", "v2"),
        }
    )
    with caplog.at_level(logging.DEBUG, logger="pipelines.warehouse.partitions"):
        assert replace_partition(engine, "recommendations", DAY, [frame.iloc[:1000], frame.iloc[1000:]]) == n
    assert _formats(caplog) == ["binary", "binary"]
    back = pd.read_sql(
        "SELECT as_of_date, user_id, rank, item_id, score, source, model_version FROM recommendations "
        "ORDER BY user_id, rank",
        engine,
    )
    assert (back["as_of_date"] == DAY).all()
    expected = frame.sort_values(["user_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(back.drop(columns="as_of_date"), expected, check_dtype=False)


def test_unsupported_columns_and_varied_text_take_the_csv_path(typed: Engine, caplog: pytest.LogCaptureFixture) -> None:
    with typed.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE typed ADD COLUMN j jsonb")
    varied = pd.DataFrame({"i4": range(200), "t": [f"title {i}" for i in range(200)]})  # 200 text groups
    with caplog.at_level(logging.DEBUG, logger="pipelines.warehouse.partitions"), typed.begin() as conn:
        copy_frames(conn, "typed", pd.DataFrame({"i4": [1, 2], "j": [{"a": [1]}, None]}))
        copy_frames(conn, "typed", varied)
    assert _formats(caplog) == ["csv", "csv"]
    assert _back(typed, "SELECT j FROM typed WHERE i4 IN (1, 2) AND j IS NOT NULL") == [({"a": [1]},)]
    assert _back(typed, "SELECT count(DISTINCT t) FROM typed") == [(200,)]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("rank", 32768, r"recommendations\.rank: 32768 is out of range \[-32768, 32767\]"),
        ("rank", 1.5, r"recommendations\.rank: 1\.5 is not an integer"),
        ("score", 1e39, r"recommendations\.score: 1e\+39 is out of range for a 32-bit float"),
        ("item_id", "x", r"recommendations\.item_id: not a number"),
    ],
)
def test_a_value_the_type_cannot_hold_fails_and_keeps_the_old_rows(
    engine: Engine, column: str, value: object, message: str
) -> None:
    good = pd.DataFrame(
        {"user_id": [1], "rank": [1], "item_id": [10], "score": [0.5], "source": "model", "model_version": "v1"}
    )
    replace_partition(engine, "recommendations", DAY, good)
    bad = good.astype({column: object})
    bad.loc[0, column] = value
    with pytest.raises(ValueError, match=message):
        replace_partition(engine, "recommendations", DAY, [good.assign(user_id=2), bad])
    assert _back(engine, "SELECT user_id, rank, item_id FROM recommendations") == [(1, 1, 10)]


def test_naive_timestamps_for_timestamptz_and_numeric_overflow_are_refused(typed: Engine) -> None:
    with pytest.raises(ValueError, match="typed.tz: timezone-naive"), typed.begin() as conn:
        copy_frames(conn, "typed", pd.DataFrame({"tz": pd.to_datetime(["2026-03-14 12:00"])}))
    with (
        pytest.raises(ValueError, match=r"typed.n: 10000000000.0 does not fit numeric\(12, 2\)"),
        typed.begin() as conn,
    ):
        copy_frames(conn, "typed", pd.DataFrame({"n": [1e10]}))
    assert _back(typed, "SELECT count(*) FROM typed") == [(0,)]

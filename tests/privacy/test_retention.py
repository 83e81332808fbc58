"""Retention on real PostgreSQL: whole partitions older than each table's window are dropped, the rest untouched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import ConfigError
from pipelines.privacy import steps
from pipelines.privacy.retention import DEFAULT_RETENTION_DAYS, RetentionConfig, enforce_retention, partitioned_tables
from pipelines.settings import Settings
from pipelines.warehouse.partitions import day_partitions, replace_partition

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 30)
DAYS = [AS_OF - dt.timedelta(days=n) for n in range(6)]  # 06-25 .. 06-30


def _recommendations(day: dt.date) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "rank": [1, 1], "item_id": [7, 8], "score": [0.5, 0.25],
                         "source": "model", "model_version": f"v{day:%d}"})  # fmt: skip


def _dq(day: dt.date) -> pd.DataFrame:
    return pd.DataFrame({"expectation": ["events.batch.not_empty"], "expectation_type": ["x"],
                         "table_name": ["events"], "severity": ["critical"], "success": [True]})  # fmt: skip


@pytest.fixture
def filled(engine: Engine, tmp_path: Path) -> Engine:
    for day in DAYS:
        replace_partition(engine, "recommendations", day, _recommendations(day))
        replace_partition(engine, "dq_results", day, _dq(day))
        (tmp_path / "data_docs" / day.isoformat()).mkdir(parents=True)
    return engine


def _partitions(engine: Engine, table: str) -> list[dt.date]:
    with engine.connect() as conn:
        return list(day_partitions(conn, table))


def _rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()


def test_partitions_older_than_the_window_are_dropped_whole(filled: Engine, tmp_path: Path) -> None:
    kept_rows = [r for r in _rows(filled, "recommendations") if r.as_of_date > AS_OF - dt.timedelta(days=3)]
    summary = enforce_retention(filled, AS_OF, tmp_path, RetentionConfig.with_overrides({"recommendations": 3}))

    assert summary["dropped"]["recommendations"] == [d.isoformat() for d in sorted(DAYS)[:3]]
    assert _partitions(filled, "recommendations") == sorted(DAYS)[3:]  # dropped tables, not emptied ones
    assert _rows(filled, "recommendations") == kept_rows
    # dq_results keeps its default window (90 days): nothing of this week goes, nor its Data Docs.
    assert summary["dropped"]["dq_results"] == [] and _partitions(filled, "dq_results") == sorted(DAYS)
    assert len(list((tmp_path / "data_docs").iterdir())) == len(DAYS)


def test_data_docs_go_with_their_dq_results_partitions_and_a_rerun_drops_nothing_more(
    filled: Engine, tmp_path: Path
) -> None:
    config = RetentionConfig.with_overrides({"dq_results": 2})
    enforce_retention(filled, AS_OF, tmp_path, config)
    assert _partitions(filled, "dq_results") == [AS_OF - dt.timedelta(days=1), AS_OF]
    assert sorted(p.name for p in (tmp_path / "data_docs").iterdir()) == ["2026-06-29", "2026-06-30"]
    assert enforce_retention(filled, AS_OF, tmp_path, config)["dropped"]["dq_results"] == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"recommendations": 0}, "retention window of recommendations must be a whole number of days >= 1"),
        ({"recommendations": "7"}, "must be a whole number of days"),
        ({"recommendation": 7}, "recommendation that are not partitioned tables"),
        (["recommendations"], "must be an object of table -> days"),
    ],
)
def test_bad_windows_are_refused_before_anything_is_dropped(
    filled: Engine, tmp_path: Path, overrides: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        steps.enforce_retention(filled, AS_OF, Settings(state_dir=tmp_path), {"retention": overrides})
    assert _partitions(filled, "recommendations") == sorted(DAYS)


def test_every_partitioned_table_has_a_default_window(engine: Engine) -> None:
    tables = partitioned_tables(engine)
    assert {"recommendations", "user_profiles", "dq_results"} <= tables
    assert tables <= set(DEFAULT_RETENTION_DAYS), (
        f"no retention window for {sorted(tables - set(DEFAULT_RETENTION_DAYS))}"
    )

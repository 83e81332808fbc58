"""The data-quality gate against real PostgreSQL: one validation per date, shared by the tests that read it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.delivery.config import DeliveryConfig
from pipelines.errors import DataQualityError
from pipelines.quality import CHECKS, GateConfig, GateReport, run_quality_gate
from pipelines.quality.validation import APPLICATION_NAME
from tests.quality.store import (
    BAD,
    BAD_ROWS,
    CLEAN,
    DELIVERY_BAD_ROWS,
    EMPTY,
    FIRST,
    LAST,
    WARN,
    dq_rows,
    load_store,
)

pytestmark = pytest.mark.integration

ALL_NAMES = {check.name for check in CHECKS}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def clean_report(store_engine: Engine, artifacts: Path) -> GateReport:
    return run_quality_gate(store_engine, CLEAN, artifacts)


@pytest.fixture(scope="module")
def warn_report(store_engine: Engine, artifacts: Path) -> GateReport:
    return run_quality_gate(store_engine, WARN, artifacts)


@pytest.fixture(scope="module")
def bad_day(store_engine: Engine, artifacts: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """The error message and the dq_results rows of the day with one bad row per class of bad input."""
    with pytest.raises(DataQualityError) as caught:
        run_quality_gate(store_engine, BAD, artifacts)
    return str(caught.value), dq_rows(store_engine, BAD)


def test_clean_day_passes_and_writes_one_row_per_expectation(clean_report: GateReport, store_engine: Engine) -> None:
    assert clean_report.verdict == "pass"
    assert clean_report.events_checked == 10
    rows = dq_rows(store_engine, CLEAN)
    assert set(rows) == ALL_NAMES
    assert all(row["success"] for row in rows.values())
    assert rows["events.volume.trailing_mean"]["observed_value"]["trailing_mean"] == 10
    assert rows["events.price.non_negative"]["expectation_type"] == "expect_column_values_to_be_between"
    assert rows["events.user_id.references_users"]["expectation_type"] == "unexpected_rows_expectation"
    summary = json.loads(json.dumps(clean_report.summary()))
    assert summary["verdict"] == "pass" and summary["expectations"] == len(ALL_NAMES) == summary["passed"]


def test_data_docs_index_is_written_under_the_artifacts_dir(clean_report: GateReport, artifacts: Path) -> None:
    assert clean_report.data_docs == artifacts / "data_docs" / CLEAN.isoformat() / "index.html"
    assert clean_report.data_docs.is_file()
    (batch_page,) = clean_report.data_docs.parent.glob("validations/events_batch/**/*.html")
    html = batch_page.read_text()
    assert "values must never be null" in html and "ref.user_id IS NULL" in html


@pytest.mark.parametrize("name", sorted(BAD_ROWS) + sorted(DELIVERY_BAD_ROWS))
def test_each_class_of_bad_input_is_caught_with_its_bad_row(
    bad_day: tuple[str, dict[str, dict[str, Any]]], name: str
) -> None:
    """Each bad row is named by its check in dq_results and in the error message, with its id."""
    message, rows = bad_day
    key = "event_id" if name.startswith("events.") else "impression_id"
    bad_id, _ = {**BAD_ROWS, **DELIVERY_BAD_ROWS}[name]
    row = rows[name]
    assert row["success"] is False and row["severity"] == "critical"
    assert row["unexpected_count"] >= 1
    assert bad_id in [bad[key] for bad in row["unexpected_sample"]]
    assert f"- {name} (" in message
    assert f'"{key}": {json.dumps(bad_id)}' in message.split(f"- {name} (", 1)[1].split("\n  - ", 1)[0]


def test_bad_rows_trip_only_their_own_checks(bad_day: tuple[str, dict[str, dict[str, Any]]]) -> None:
    message, rows = bad_day
    critical = {name for name, row in rows.items() if not row["success"] and row["severity"] == "critical"}
    assert critical == set(BAD_ROWS) | set(DELIVERY_BAD_ROWS)
    assert rows["events.price.category_range"]["unexpected_sample"][0]["category_high"] == 150
    assert rows["events.event_id.unique_vs_earlier"]["unexpected_sample"][0]["earlier_batch_date"] == "2024-03-08"
    failed = len(BAD_ROWS) + len(DELIVERY_BAD_ROWS)
    assert message.startswith(f"data-quality gate failed for the batches of {BAD}: {failed} critical check(s)")
    assert (
        rows["outcomes.click_ts.after_impression"]["unexpected_sample"][0]["impression_ts"]
        == "2024-03-10T10:01:00+00:00"
    )


def test_empty_day_is_a_critical_failure_with_a_clear_message(store_engine: Engine, artifacts: Path) -> None:
    with pytest.raises(DataQualityError, match=r"events\.batch\.not_empty .*the batch is empty"):
        run_quality_gate(store_engine, EMPTY, artifacts)
    rows = dq_rows(store_engine, EMPTY)
    assert rows["events.batch.not_empty"]["success"] is False
    assert rows["events.volume.trailing_mean"]["severity"] == "warning"


def test_a_date_after_the_newest_batch_is_refused_as_such_and_records_nothing(
    store_engine: Engine, artifacts: Path
) -> None:
    future = dt.date(2099, 1, 1)
    with pytest.raises(DataQualityError) as caught:
        run_quality_gate(store_engine, future, artifacts)
    assert str(caught.value).startswith(f"business date 2099-01-01 is after the newest loaded batch {LAST}:")
    assert "empty" not in str(caught.value)
    assert dq_rows(store_engine, future) == {}
    assert not (artifacts / "data_docs" / future.isoformat()).exists()


def test_a_warehouse_without_events_says_so(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(DataQualityError, match="business date 2024-03-01 cannot be checked: events holds no batch"):
        run_quality_gate(engine, FIRST, tmp_path)


def test_quantity_bounds_are_recorded_with_their_bad_rows(bad_day: tuple[str, dict[str, dict[str, Any]]]) -> None:
    _, rows = bad_day
    low, high = rows["events.quantity.min"], rows["events.quantity.max"]
    assert low["observed_value"]["quantity_min"] == 1 and high["observed_value"]["quantity_max"] == 10_000
    assert [bad["quantity"] for bad in low["unexpected_sample"]] == [-2]
    assert [bad["quantity"] for bad in high["unexpected_sample"]] == [1_000_000]
    assert rows["events.quantity.not_null"]["unexpected_sample"][0]["quantity"] is None


def test_quantity_bounds_and_severities_come_from_the_config(
    new_database: Callable[[], Engine], artifacts: Path
) -> None:
    """On BAD's rows, a wider upper bound passes the 1,000,000 and a warning severity keeps the -2 from blocking."""
    engine = new_database()
    load_store(engine)
    with engine.begin() as conn:  # keep BAD's ten clean rows and the two quantity rows: the verdict turns on them
        conn.execute(
            sa.text(
                """DELETE FROM events WHERE batch_date = :d
                   AND (event_id IS NULL OR (event_id NOT BETWEEN 1000 AND 1009 AND event_id NOT IN (5014, 5015)))"""
            ),
            {"d": BAD},
        )
        conn.execute(sa.text("DELETE FROM outcomes WHERE batch_date = :d"), {"d": BAD})
        conn.execute(sa.text("DELETE FROM impressions WHERE batch_date = :d"), {"d": BAD})
    config = GateConfig(quantity_max=2_000_000, severity={"events.quantity.min": "warning"})
    report = run_quality_gate(engine, BAD, artifacts, config)
    assert report.verdict == "warn"
    rows = dq_rows(engine, BAD)
    assert rows["events.quantity.max"]["success"] is True
    assert rows["events.quantity.min"]["success"] is False and rows["events.quantity.min"]["severity"] == "warning"


def test_volume_deviation_is_a_warning_that_does_not_block(warn_report: GateReport, store_engine: Engine) -> None:
    assert warn_report.verdict == "warn"
    assert warn_report.summary()["warnings"] == ["events.volume.trailing_mean"]
    volume = dq_rows(store_engine, WARN)["events.volume.trailing_mean"]
    assert volume["success"] is False and volume["severity"] == "warning"
    assert volume["observed_value"] == {"observed": 30, "trailing_mean": 10.0, "history_days": 7, "allowed": [5, 15]}


def test_rerun_replaces_the_dates_results_and_severity_overrides_apply(
    warn_report: GateReport, store_engine: Engine, artifacts: Path
) -> None:
    assert dq_rows(store_engine, WARN)["events.volume.trailing_mean"]["severity"] == "warning"
    strict = GateConfig(severity={"events.volume.trailing_mean": "critical"})
    with pytest.raises(DataQualityError, match=r"events\.volume\.trailing_mean"):
        run_quality_gate(store_engine, WARN, artifacts, strict)
    rows = dq_rows(store_engine, WARN)
    assert set(rows) == ALL_NAMES
    assert rows["events.volume.trailing_mean"]["severity"] == "critical"


@pytest.fixture(scope="module")
def first_day_with_a_wrong_type(
    new_database: Callable[[], Engine], artifacts: Path
) -> tuple[str, dict[str, dict[str, Any]]]:
    """A store whose events.quantity is text, validated on its first day (so without volume history)."""
    engine = new_database()
    load_store(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE events ALTER COLUMN quantity TYPE text")
    with pytest.raises(DataQualityError) as caught:
        run_quality_gate(engine, FIRST, artifacts)
    return str(caught.value), dq_rows(engine, FIRST)


def test_a_column_of_the_wrong_type_fails_the_schema_check(
    first_day_with_a_wrong_type: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    message, rows = first_day_with_a_wrong_type
    assert "events.quantity.type (expect_column_values_to_be_in_type_list on events.quantity)" in message
    assert 'observed "TEXT"' in message
    # The quantity bounds cannot hold for text either: they fail too, and nothing else does.
    failed = {name for name, row in rows.items() if not row["success"]}
    assert failed == {"events.quantity.type", "events.quantity.min", "events.quantity.max"}


def test_first_day_without_history_passes_the_volume_check_with_a_note(
    first_day_with_a_wrong_type: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, rows = first_day_with_a_wrong_type
    volume = rows["events.volume.trailing_mean"]
    assert volume["success"] is True
    assert volume["observed_value"] == {
        "observed": 10,
        "note": "no events in the 7 days before: nothing to compare the volume with",
    }


def test_gate_leaves_no_connection_of_its_own_open(store_engine: Engine, clean_report: GateReport) -> None:
    with store_engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"), {"app": APPLICATION_NAME}
        ).scalar()
    assert left == 0


def test_a_day_without_delivery_logs_passes_every_delivery_check(warn_report: GateReport, store_engine: Engine) -> None:
    """A store that does not run the delivery loop loads no impressions: that is not a failure."""
    rows = dq_rows(store_engine, WARN)
    delivery = {name: row for name, row in rows.items() if name.split(".")[0] in ("impressions", "outcomes")}
    assert len(delivery) == len(DELIVERY_BAD_ROWS) + 3  # + the two schema checks and the attribution window
    assert all(row["success"] for row in delivery.values())


@pytest.fixture(scope="module")
def late_outcomes_report(store_engine: Engine, artifacts: Path) -> GateReport:
    return run_quality_gate(store_engine, LAST, artifacts)


def test_late_outcomes_count_inside_the_attribution_window_and_warn_outside_it(
    late_outcomes_report: GateReport, store_engine: Engine
) -> None:
    """LAST brings a conversion four days after its impression (its click came with CLEAN's batch: it
    passes) and a click four days after its impression (outside the 24-hour click window: a warning)."""
    assert late_outcomes_report.verdict == "warn"
    assert late_outcomes_report.summary()["warnings"] == ["outcomes.attribution_window"]
    window = dq_rows(store_engine, LAST)["outcomes.attribution_window"]
    assert window["observed_value"] == {"observed": 1, "click_window_hours": 24, "conversion_window_days": 7}
    assert [row["impression_id"] for row in window["unexpected_sample"]] == [80003]


def test_the_attribution_window_comes_from_the_delivery_config(store_engine: Engine, artifacts: Path) -> None:
    """The window is the delivery stage's, the one its effects count outcomes in."""
    report = run_quality_gate(store_engine, LAST, artifacts, delivery=DeliveryConfig(click_window_hours=5 * 24))
    assert report.verdict == "pass"
    strict = GateConfig(severity={"outcomes.attribution_window": "critical"})
    with pytest.raises(DataQualityError, match=r"outcomes\.attribution_window .*: 2 bad row\(s\)"):
        run_quality_gate(store_engine, LAST, artifacts, strict, DeliveryConfig(conversion_window_days=3))
    window = dq_rows(store_engine, LAST)["outcomes.attribution_window"]
    assert sorted(row["impression_id"] for row in window["unexpected_sample"]) == [80001, 80003]


def test_arms_outside_the_configured_set_are_refused(bad_day: tuple[str, dict[str, dict[str, Any]]]) -> None:
    _, rows = bad_day
    arms = rows["impressions.arm.allowed"]
    assert arms["observed_value"]["arms"] == ["personalised", "holdout"]
    assert [bad["arm"] for bad in arms["unexpected_sample"]] == ["treatment"]

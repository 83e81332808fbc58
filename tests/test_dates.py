"""Business-date resolution for scheduled, backfill and manual runs; never the wall clock."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from pipelines.dates import resolve_business_date, resolve_from_context
from pipelines.errors import ConfigError

INTERVAL_START = dt.datetime(2026, 6, 29, tzinfo=dt.UTC)


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_interval_runs_use_the_data_interval_start(run_type: str) -> None:
    # A business_date param on such a run does not move it off its interval.
    params = {"business_date": "2020-01-01"}
    assert resolve_business_date(run_type, INTERVAL_START, params) == dt.date(2026, 6, 29)


def test_interval_start_is_taken_in_utc() -> None:
    late_evening_west = dt.datetime(2026, 6, 29, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert resolve_business_date("scheduled", late_evening_west, {}) == dt.date(2026, 6, 30)


def test_manual_run_uses_the_param() -> None:
    assert resolve_business_date("manual", INTERVAL_START, {"business_date": "2026-05-01"}) == dt.date(2026, 5, 1)


def test_manual_run_without_param_falls_back_to_its_interval() -> None:
    assert resolve_business_date("manual", INTERVAL_START, {"business_date": None}) == dt.date(2026, 6, 29)


def test_manual_run_with_no_logical_date_and_no_param_is_refused() -> None:
    with pytest.raises(ConfigError, match="no logical date, so it needs the 'business_date' parameter"):
        resolve_business_date("manual", None, {})


def test_manual_run_with_no_logical_date_uses_the_param() -> None:
    assert resolve_business_date("manual", None, {"business_date": "2026-06-30"}) == dt.date(2026, 6, 30)


def test_scheduled_run_without_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="has no data interval"):
        resolve_business_date("scheduled", None, {})


@pytest.mark.parametrize("bad", ["30/06/2026", "2026-13-01", "yesterday", 20260630])
def test_malformed_param_names_the_problem(bad: object) -> None:
    with pytest.raises(ConfigError, match="business_date must be a date like"):
        resolve_business_date("manual", None, {"business_date": bad})


def test_context_adapter_reads_run_type_interval_and_params() -> None:
    context = {
        "dag_run": SimpleNamespace(run_type="backfill"),
        "data_interval_start": INTERVAL_START,
        "params": {"business_date": None},
    }
    assert resolve_from_context(context) == dt.date(2026, 6, 29)

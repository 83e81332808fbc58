"""Which business date a DAG run is for: pure functions of the run's type, data interval and params.

Scheduled and backfill runs process their data interval's start (a UTC day). Manual runs process the
`business_date` Param; a manual run without it falls back to its data interval (the last complete day
before its logical date, as a scheduled run would), and a manual run with neither is refused. Nothing
here reads the wall clock: a rerun of the same run always processes the same day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pipelines.errors import ConfigError

PARAM = "business_date"
INTERVAL_RUN_TYPES = frozenset({"scheduled", "backfill"})


def parse_date(value: str | dt.date, *, what: str = PARAM) -> dt.date:
    """A date from an ISO string (the trigger form sends 'YYYY-MM-DD') or a date/datetime."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ConfigError(f"{what} must be a date like 2026-06-30, got {value!r}") from None


def resolve_business_date(run_type: str, data_interval_start: dt.datetime | None, params: Mapping[str, Any]) -> dt.date:
    """The business date of a run. See the module docstring for the rules."""
    run_type = str(getattr(run_type, "value", run_type))
    requested = params.get(PARAM)
    if run_type in INTERVAL_RUN_TYPES:
        if data_interval_start is None:
            raise ConfigError(f"a {run_type} run has no data interval; check the DAG's timetable")
        return parse_date(data_interval_start, what="data_interval_start")
    if requested not in (None, ""):
        return parse_date(requested)
    if data_interval_start is not None:
        return parse_date(data_interval_start, what="data_interval_start")
    raise ConfigError(
        f"this {run_type} run has no logical date, so it needs the '{PARAM}' parameter "
        '(pick a date in the trigger form, or pass --conf \'{"business_date": "YYYY-MM-DD"}\')'
    )


def resolve_from_context(context: Mapping[str, Any]) -> dt.date:
    """Adapter for an Airflow task context."""
    dag_run = context["dag_run"]
    return resolve_business_date(dag_run.run_type, context.get("data_interval_start"), context.get("params") or {})

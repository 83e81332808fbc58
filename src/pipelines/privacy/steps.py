"""The forget_users DAG's tasks: plain functions, and the one seam that runs them in an Airflow task."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from pipelines.settings import Settings

log = logging.getLogger(__name__)


def erase_users(engine: Engine, settings: Settings, params: Mapping[str, Any], requested_by: str) -> dict[str, Any]:
    """Record the run's `user_ids` (if any) as requests, then erase every pending request, oldest first.

    The summary names requests, not users, so task logs and XComs do not repeat the ids.
    """
    from pipelines.privacy.erasure import parse_user_ids, process_pending, request_erasure

    raw = params.get("user_ids")
    requested = [] if raw in (None, "", []) else request_erasure(engine, parse_user_ids(raw), requested_by)
    return {"requested": requested, "completed": process_pending(engine, settings.artifacts)}


def enforce_retention(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict[str, Any]:
    from pipelines.privacy import retention

    config = retention.RetentionConfig.with_overrides(params.get("retention"))
    return retention.enforce_retention(engine, as_of, settings.artifacts, config)


def run(step: str, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run `step` of forget_users for the current task's DAG run. Retention runs in scheduled (and backfill)
    runs as of their data interval's start; a manual run only erases."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    from pipelines.airflow_adapter import failing_without_retry, warehouse_url_from_connection
    from pipelines.dates import INTERVAL_RUN_TYPES, resolve_from_context
    from pipelines.warehouse.engine import get_engine

    context = context if context is not None else get_current_context()
    dag_run = context["dag_run"]
    params = dict(context.get("params") or {})
    with failing_without_retry(step):
        settings = Settings.from_env()
        engine = get_engine(warehouse_url_from_connection())
        if step == "erase_users":
            summary = erase_users(engine, settings, params, requested_by=f"forget_users {dag_run.run_id}")
        elif step == "enforce_retention":
            if str(getattr(dag_run.run_type, "value", dag_run.run_type)) not in INTERVAL_RUN_TYPES:
                raise AirflowSkipException("a manual run only erases; retention runs in the daily scheduled run")
            summary = enforce_retention(engine, resolve_from_context(context), settings, params)
        else:
            raise ValueError(f"forget_users has no step {step!r}")
    log.info("%s summary: %s", step, summary)
    return summary

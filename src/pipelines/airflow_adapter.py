"""The one seam between Airflow task contexts and the plain task functions in `pipelines.tasks`.

A DAG task calls `run_step(name)`: it resolves the business date from the run, the warehouse from the
Airflow connection `marketing_db`, the config overrides from the run's params, calls the task function
and turns data errors (which a retry cannot fix) into AirflowFailException so Airflow does not retry them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipelines.dates import resolve_from_context
from pipelines.errors import ConfigError, DataError
from pipelines.stack import CONNECTION_ID

log = logging.getLogger(__name__)


def warehouse_url_from_connection(conn_id: str = CONNECTION_ID) -> str:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_uri()


def run_step(step: str, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run task function `step` for the current task's DAG run and return its summary."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines import tasks
    from pipelines.settings import Settings
    from pipelines.warehouse.engine import get_engine

    context = context if context is not None else get_current_context()
    try:
        as_of = resolve_from_context(context)
        params = dict(context.get("params") or {})
        engine = get_engine(warehouse_url_from_connection())
        summary = tasks.STEPS[step](engine, as_of, Settings.from_env(), params)
    except (DataError, ConfigError) as exc:
        raise AirflowFailException(f"{step} for this run cannot succeed on retry: {exc}") from exc
    log.info("%s summary: %s", step, summary)
    return summary

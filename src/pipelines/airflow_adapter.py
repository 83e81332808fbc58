"""The one seam between Airflow task contexts and the plain task functions in `pipelines.tasks`.

A DAG task calls `run_step(name)`: it resolves the business date from the run, the warehouse from the
Airflow connection `marketing_db`, the config overrides from the run's params, sets the task's torch
thread budget, calls the task function and turns data errors (which a retry cannot fix) into
AirflowFailException so Airflow does not retry them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pipelines.dates import resolve_from_context
from pipelines.errors import ConfigError, DataError
from pipelines.settings import Settings
from pipelines.stack import CONNECTION_ID

log = logging.getLogger(__name__)


def warehouse_url_from_connection(conn_id: str = CONNECTION_ID) -> str:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_uri()


def concurrent_model_tasks(settings: Settings) -> int:
    """How many model tasks this worker may run at once: the executor's parallelism (a Celery worker's
    concurrency), capped by the slots of the pool `gpu` every model task runs in."""
    from airflow.sdk.configuration import conf

    executor = conf.get("core", "executor").split(",")[0].strip().rsplit(".", 1)[-1]
    if executor == "CeleryExecutor":
        slots = conf.getint("celery", "worker_concurrency", fallback=0)
    else:
        slots = conf.getint("core", "parallelism")
    # Parallelism 0 is Airflow's "unlimited": then only the pool caps it.
    return min(slots, settings.gpu_pool_slots) if slots > 0 else settings.gpu_pool_slots


def apply_thread_budget(settings: Settings) -> int:
    """Give this task its share of the cores (PIPELINES_TORCH_THREADS, else cores // concurrent model tasks)."""
    from pipelines.compute import set_torch_threads, thread_budget

    concurrent = concurrent_model_tasks(settings)
    threads = thread_budget(settings.torch_threads, concurrent)
    set_torch_threads(threads)
    if settings.torch_threads is not None:
        log.info("torch threads: %d (PIPELINES_TORCH_THREADS)", threads)
    else:
        log.info("torch threads: %d (the cores shared by up to %d model task(s) at once)", threads, concurrent)
    return threads


@contextmanager
def failing_without_retry(step: str) -> Iterator[None]:
    """Data and config errors become AirflowFailException: a retry of the same input cannot fix them."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (DataError, ConfigError) as exc:
        raise AirflowFailException(f"{step} for this run cannot succeed on retry: {exc}") from exc


def run_step(step: str, context: Mapping[str, Any] | None = None, **arguments: Any) -> Any:
    """Run task function `step` (of tasks.STEPS, or of tasks.MODEL_PHASES with its `arguments`) for the
    current task's DAG run and return its summary."""
    from airflow.sdk import get_current_context

    from pipelines import tasks
    from pipelines.warehouse.engine import get_engine

    context = context if context is not None else get_current_context()
    with failing_without_retry(step):
        as_of = resolve_from_context(context)
        params = dict(context.get("params") or {})
        settings = Settings.from_env()
        apply_thread_budget(settings)
        engine = get_engine(warehouse_url_from_connection())
        function = tasks.STEPS[step] if step in tasks.STEPS else tasks.MODEL_PHASES[step]
        summary = function(engine, as_of, settings, params, **arguments)
    log.info("%s summary: %s", step, summary)
    return summary

"""
### marketing_daily

Keeps personalised marketing fresh for one **business date** (a UTC day):

1. `check_data_quality`: Great Expectations checks the day's events in PostgreSQL; a critical failure
   stops the run here, so nothing is trained or written and yesterday's outputs stay.
2. `publish_report`: rows written per output partition, the data-quality verdict and the models.

**Which date?** Scheduled and backfill runs process their data interval's start. Manual runs process
the *Business date* picked in the trigger form; without one they fall back to the run's data interval,
and a run with neither is refused. Outputs are partitions of that date, replaced atomically, so a
rerun or a backfill of a date gives the same rows.

Model tasks run in the pool `gpu` (queue `gpu` on Celery). Logic lives in `pipelines`; this file is
schedule, params and wiring only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

GPU_POOL = "gpu"


def _run(step: str) -> dict:
    from pipelines.airflow_adapter import run_step

    return run_step(step)


@dag(
    dag_id="marketing_daily",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    tags=["marketing", "ml"],
    params={
        "business_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Business date",
            description=(
                "The UTC day a manual run processes. Scheduled and backfill runs ignore it and use "
                "their data interval's start."
            ),
        ),
        "force_promote": Param(
            False,
            type="boolean",
            title="Force model promotion",
            description=(
                "Make this run's models champions even if they score below the current champions. "
                "Hard quality gates still apply."
            ),
        ),
        "overrides": Param(
            {},
            type="object",
            title="Config overrides",
            description=(
                'Per-stage settings, e.g. {"quality": {"volume_tolerance": 0.5}}. '
                "Unknown stages or keys fail the run instead of being ignored."
            ),
        ),
    },
)
def marketing_daily() -> None:
    @task
    def check_data_quality() -> dict:
        return _run("check_data_quality")

    @task
    def publish_report() -> dict:
        return _run("publish_report")

    check_data_quality() >> publish_report()


marketing_daily()

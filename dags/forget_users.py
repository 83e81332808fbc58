"""
### forget_users

Erases customers on request (GDPR art. 17) and enforces the warehouse's retention windows.

1. `erase_users`: a manual run records the user ids of its form as erasure requests (all or none: an
   unknown id, a malformed list or a user already requested fails the run with nothing recorded), then
   every run erases all pending requests, oldest first. Each request removes the user's rows from every
   table that holds personal data (events, users, impressions and outcomes where they exist, profiles,
   recommendations, segment member counts, data-quality samples and their Data Docs, run reports), one
   transaction per table, and records what it removed in `erasure_requests`. Models that learned from
   the user are marked stale and the next `marketing_daily` run retrains them cold.
2. `enforce_retention` (scheduled runs only): drops whole partitions older than each table's window as
   of the run's data interval start.

Logic lives in `pipelines.privacy`; this file is schedule, params and wiring only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task


def _run(step: str) -> dict:
    from pipelines.privacy.steps import run

    return run(step)


@dag(
    dag_id="forget_users",
    doc_md=__doc__,
    # Daily; a model task still training when an erasure runs writes nothing, and its retry retrains without
    # the erased users.
    schedule=CronDataIntervalTimetable("30 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    tags=["privacy"],
    params={
        "user_ids": Param(
            [],
            type="array",
            items={"type": "integer", "minimum": 0},
            uniqueItems=True,
            title="User ids to erase",
            description=(
                "The customers to erase, e.g. [1042, 77]. Empty: only erase requests still pending. Unknown ids, "
                "repeated ids or users already requested fail the run and record nothing."
            ),
        ),
        "retention": Param(
            {},
            type="object",
            additionalProperties={"type": "integer", "minimum": 1},
            title="Retention windows (days)",
            description=(
                'Per-table windows replacing the defaults (README "Erasure and retention"), e.g. '
                '{"recommendations": 14}; scheduled runs drop partitions older than the window.'
            ),
        ),
    },
)
def forget_users() -> None:
    @task
    def erase_users() -> dict:
        return _run("erase_users")

    @task
    def enforce_retention() -> dict:
        return _run("enforce_retention")

    erase_users()
    enforce_retention()


forget_users()

"""What the model-task lifecycle asks about erasures: which erasures a run's data reflects, whether its parent
learned from erased users (then it trains cold), whether a model may still serve, and whether an erasure
ran while the run trained (then it must not write).

A run notes the newest completed erasure before it reads (`model_runs.erasure_seen`). An erasure marks
itself running under an exclusive advisory lock that every output write takes shared, so a write either
commits before the erasure starts (and the erasure then removes the user's new rows) or sees it and stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines.errors import DataError, PipelineError
from pipelines.privacy.tables import learns_from_users

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from pipelines.registry import ModelRun

# pg_advisory lock key shared by erasures (exclusive) and output writes (shared): "erasure" in ASCII.
ERASURE_LOCK = 0x65726173757265


class ErasureInterrupted(PipelineError):
    """An erasure started or completed after this run read its data: rerun it (Airflow retries) to read without
    the erased users. Not a DataError: a retry succeeds."""


class ErasedTrainingData(DataError):
    """A model that learned from erased users was asked to serve."""


def newest_erasure(conn: Engine | Connection) -> int | None:
    """The id of the last erasure request to complete (None: none has)."""
    query = sa.text("SELECT id FROM erasure_requests WHERE status = 'completed' ORDER BY completed_seq DESC LIMIT 1")
    if isinstance(conn, sa.engine.Engine):
        with conn.connect() as c:
            return c.execute(query).scalar()
    return conn.execute(query).scalar()


def erasures_after(conn: Connection, seen: int | None) -> list[int]:
    """Requests completed after request `seen` (all completed ones when None), oldest first."""
    return list(
        conn.execute(
            sa.text(
                """SELECT id FROM erasure_requests
                   WHERE status = 'completed' AND completed_seq > coalesce(
                       (SELECT completed_seq FROM erasure_requests WHERE id = CAST(:seen AS bigint)), 0)
                   ORDER BY completed_seq"""
            ),
            {"seen": seen},
        ).scalars()
    )


def trained_before_erasure(engine: Engine, run: ModelRun | None) -> str | None:
    """Why `run` must not warm-start or serve: it learned from users erased since; None when it may."""
    if run is None or not learns_from_users(run.model_name):
        return None
    with engine.connect() as conn:
        later = erasures_after(conn, run.erasure_seen)
    if not later:
        return None
    return f"{run.version} was trained before erasure request {later[-1]} completed"


def refuse_if_trained_before_erasure(engine: Engine, run: ModelRun | None) -> None:
    """For serving without training (today's champion): a model that learned from erased users never serves."""
    reason = trained_before_erasure(engine, run)
    if reason is not None:
        raise ErasedTrainingData(
            f"{reason}: it cannot serve any more; run the newest date first, which retrains it without the erased "
            "users, then recompute"
        )


def check_no_erasure_since(conn: Connection, seen: int | None) -> None:
    """On the transaction that writes a run's outputs: refuse to write when an erasure is running or completed
    after the run read its data (it may have read the erased users)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": ERASURE_LOCK})
    running = conn.execute(sa.text("SELECT min(id) FROM erasure_requests WHERE status = 'running'")).scalar()
    later = erasures_after(conn, seen)
    if running is not None or later:
        which = f"is running (request {running})" if running is not None else f"completed (request {later[-1]})"
        raise ErasureInterrupted(
            f"an erasure {which} after this run read its data; nothing was written: rerun the task to read the "
            "data without the erased users"
        )

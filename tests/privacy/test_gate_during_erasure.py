"""The data-quality gate and a concurrent erasure (real gate, real erasure, real PostgreSQL): the gate never
writes samples or Data Docs quoting a user erased while it read the events."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import DataQualityError
from pipelines.privacy.erasure import process_pending, request_erasure
from pipelines.privacy.models import ErasureInterrupted
from pipelines.quality import run_quality_gate
from tests.quality.store import BAD, load_store

pytestmark = pytest.mark.integration

USER = 4  # every bad row of the BAD day but two (no user, an unknown user) is this user's


def _quoted_users(engine: Engine) -> set[object]:
    with engine.connect() as conn:
        samples = conn.execute(sa.text("SELECT unexpected_sample FROM dq_results WHERE as_of_date = :d"), {"d": BAD})
        return {row.get("user_id") for sample in samples.scalars() for row in sample}


def _wait_until_blocked_on(engine: Engine, table: str) -> None:
    query = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = CAST(:t AS regclass)")
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while conn.execute(query, {"t": table}).scalar() == 0:
            assert time.monotonic() < deadline, f"the gate never waited for {table}"
            time.sleep(0.05)
            conn.rollback()


def test_an_erasure_completed_while_the_gate_read_stops_its_write_and_the_retry_quotes_nobody_erased(
    engine: Engine, tmp_path: Path
) -> None:
    load_store(engine)
    artifacts = tmp_path / "artifacts"
    with ThreadPoolExecutor(1) as pool, engine.connect() as holder:
        # The gate checks that events name known items; holding items keeps it mid-read while the erasure runs.
        holder.execute(sa.text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
        gate = pool.submit(run_quality_gate, engine, BAD, artifacts)
        _wait_until_blocked_on(engine, "items")
        request_erasure(engine, [USER], "test")
        (done,) = process_pending(engine, artifacts)
        holder.rollback()
        with pytest.raises(ErasureInterrupted, match=f"completed \\(request {done['request']}\\)"):
            gate.result(timeout=120)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dq_results")).scalar() == 0
    assert not (artifacts / "data_docs" / BAD.isoformat()).exists()
    assert list((artifacts / "data_docs").glob(".*")) == []  # the half-built docs went too

    # The retry reads without the user: its samples still show the other bad rows, none of theirs.
    with pytest.raises(DataQualityError):
        run_quality_gate(engine, BAD, artifacts)
    assert _quoted_users(engine) == {None, 999}
    assert (artifacts / "data_docs" / BAD.isoformat() / "index.html").exists()

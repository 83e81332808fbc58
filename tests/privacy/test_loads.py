"""Reloads never bring an erased customer back (real loaders on real PostgreSQL): rows of users whose erasure
is running or completed are dropped in the load's transaction, and the load says how many."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.privacy.erasure import process_pending, request_erasure
from pipelines.privacy.loads import ErasedUsers
from pipelines.privacy.models import ERASURE_LOCK
from pipelines.sources import load_amazon

pytestmark = pytest.mark.integration

# user item item ...: user 2 has two purchases, user 3 three, user 4 one
SEQUENCES = "1 10 11\n2 10 12\n3 11 12 13\n4 13 10\n5 12 10\n"


@pytest.fixture
def sequences(engine: Engine, tmp_path: Path) -> Path:
    path = tmp_path / "Beauty.txt"
    path.write_text(SEQUENCES)
    load_amazon(engine, path, chunk_rows=2)
    return path


def _users(engine: Engine) -> tuple[set[int], set[int]]:
    with engine.connect() as conn:
        users = set(conn.execute(sa.text("SELECT user_id FROM users")).scalars())
        with_events = set(conn.execute(sa.text("SELECT DISTINCT user_id FROM events")).scalars())
    return users, with_events


def test_a_reload_skips_erased_and_running_users_and_says_how_many(
    engine: Engine, sequences: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request_erasure(engine, [2], "test")
    process_pending(engine, tmp_path / "artifacts")
    request_erasure(engine, [3, 4], "test")
    with engine.begin() as conn:  # user 3's erasure has started (another sweep is running it)
        conn.execute(sa.text("UPDATE erasure_requests SET status = 'running' WHERE user_id = 3"))

    with caplog.at_level(logging.INFO, logger="pipelines.sources.load"):
        summary = load_amazon(engine, sequences, chunk_rows=2)

    # Erased (2) and being erased (3) stay out; pending (4) is loaded and its erasure removes it after.
    assert _users(engine) == ({1, 4, 5}, {1, 4, 5})
    assert dict(summary.skipped) == {"events": 5, "users": 2} and summary.erased_users == 2
    assert summary.rows["events"] == 11 - 5 and summary.rows["users"] == 3
    assert "skipped 7 rows of 2 erased users (events 5, users 2)" in caplog.text
    process_pending(engine, tmp_path / "artifacts")
    assert _users(engine) == ({1, 5}, {1, 5})
    assert load_amazon(engine, sequences).erased_users == 3


def test_an_erasure_cannot_start_while_a_load_is_open(engine: Engine, sequences: Path) -> None:
    try_lock = sa.text("SELECT pg_try_advisory_xact_lock(:k)")
    with engine.connect() as load, engine.connect() as other:
        with load.begin():
            ErasedUsers(load)
            assert other.execute(try_lock, {"k": ERASURE_LOCK}).scalar() is False  # as erasure._start asks
            other.rollback()
        assert other.execute(try_lock, {"k": ERASURE_LOCK}).scalar() is True


def test_outcomes_of_an_erased_users_impressions_go_with_them(engine: Engine, sequences: Path, tmp_path: Path) -> None:
    request_erasure(engine, [2], "test")
    process_pending(engine, tmp_path / "artifacts")
    impressions = pd.DataFrame({"impression_id": [1, 2, 3, 4], "user_id": [1, 2, 2, None]})
    outcomes = pd.DataFrame({"impression_id": [1, 2, 3, 3, 4]})
    with engine.begin() as conn:
        erased = ErasedUsers(conn)
        with pytest.raises(ValueError, match="load impressions before outcomes"):
            erased.frames("outcomes", [outcomes])
        kept = pd.concat(erased.frames("impressions", [impressions.iloc[:2], impressions.iloc[2:]]))
        kept_outcomes = pd.concat(erased.frames("outcomes", [outcomes]))
        with pytest.raises(ValueError, match="dq_results is not a table of user rows that a load writes"):
            erased.frames("dq_results", [impressions])
    assert kept["impression_id"].tolist() == [1, 4]
    assert kept_outcomes["impression_id"].tolist() == [1, 4]
    assert erased.skipped == {"impressions": 2, "outcomes": 3} and erased.erased_users == 1

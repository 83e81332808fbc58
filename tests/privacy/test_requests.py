"""Erasure requests on real PostgreSQL: bad input changes nothing, the registry covers every personal table, and
model writes stop while an erasure they did not see runs or has completed."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.cli import main
from pipelines.privacy import erasure, steps
from pipelines.privacy.models import ErasureInterrupted, check_no_erasure_since, newest_erasure
from pipelines.privacy.tables import MODELS_WITHOUT_PERSONAL_DATA, PERSONAL_TABLES
from pipelines.settings import Settings
from tests.privacy.search import AUDIT_TABLE, fingerprint

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 6, 30)


@pytest.fixture
def store(engine: Engine) -> Engine:
    """Three users; user 3 has events but no users row (the gate reports such rows; they can still be erased)."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (user_id, signup_date) VALUES (1, :d), (2, :d)"), {"d": DAY})
        conn.execute(
            sa.text(
                """INSERT INTO events (batch_date, event_id, user_id, item_id, event_type, event_ts, price, quantity)
                   VALUES (:d, 10, 1, 5, 'view', :ts, 1, 1), (:d, 11, 3, 5, 'view', :ts, 1, 1)"""
            ),
            {"d": DAY, "ts": dt.datetime(2026, 6, 30, 12, tzinfo=dt.UTC)},
        )
    return engine


def _requests(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, user_id, status FROM erasure_requests ORDER BY id")).all()


@pytest.mark.parametrize(
    ("user_ids", "message"),
    [
        ([1, 999], "unknown user id(s) 999"),
        ("1, abc", "malformed user id list: #2 'abc'"),
        ([1, -5], "#2 -5 not a user id"),
        ([True], "#1 True not a user id"),
        ([1, 2**64], "not a user id"),
        ({"user": 1}, "must be a list of integers"),
        ([2, 1, 2], "user id(s) 2 appear more than once"),
        ([" "], "not a user id"),
    ],
)
def test_bad_user_id_lists_are_refused_with_nothing_changed(
    store: Engine, tmp_path: Path, user_ids: object, message: str
) -> None:
    before = fingerprint(store)
    with pytest.raises(erasure.ErasureRequestError, match="nothing was requested") as raised:
        steps.erase_users(store, Settings(state_dir=tmp_path), {"user_ids": user_ids}, "test")
    assert message in str(raised.value)
    assert fingerprint(store) == before


def test_an_empty_list_only_sweeps_and_a_missing_one_is_refused_when_asked(store: Engine, tmp_path: Path) -> None:
    before = fingerprint(store)
    assert steps.erase_users(store, Settings(state_dir=tmp_path), {"user_ids": []}, "test") == {
        "requested": [],
        "completed": [],
    }
    assert fingerprint(store) == before
    with pytest.raises(erasure.ErasureRequestError, match="the user id list is empty"):
        erasure.parse_user_ids("  ,, ")


def test_a_second_request_for_the_same_user_is_refused_pending_or_completed(store: Engine, tmp_path: Path) -> None:
    (first,) = erasure.request_erasure(store, [1], "test")
    before = fingerprint(store)
    with pytest.raises(
        erasure.ErasureRequestError, match=rf"already requested for user 1 \(request {first}, pending\)"
    ):
        erasure.request_erasure(store, [2, 1], "test")
    assert fingerprint(store) == before  # user 2 was not requested either: all or none

    erasure.process_pending(store, tmp_path)
    before = fingerprint(store)
    with pytest.raises(erasure.ErasureRequestError, match=rf"user 1 \(request {first}, completed\)"):
        steps.erase_users(store, Settings(state_dir=tmp_path), {"user_ids": ["1"]}, "test")
    assert fingerprint(store) == before


def test_a_user_known_only_from_events_is_erased_and_the_record_counts_rows(store: Engine, tmp_path: Path) -> None:
    summary = steps.erase_users(store, Settings(state_dir=tmp_path), {"user_ids": "3"}, "test")
    (done,) = summary["completed"]
    assert done["removed"]["events"] == 1 and done["removed"]["users"] == 0
    assert [(r.user_id, r.status) for r in _requests(store)] == [(3, "completed")]
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT user_id FROM events")).scalars().all() == [1]


def test_every_table_with_a_user_column_is_in_the_personal_data_registry(engine: Engine) -> None:
    with engine.connect() as conn:
        with_users = set(
            conn.execute(
                sa.text(
                    """SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                         AND a.attname = 'user_id' AND NOT a.attisdropped"""
                )
            ).scalars()
        )
    assert {"users", "events", "user_profiles", "recommendations"} <= with_users  # the query sees them
    missing = with_users - {entry.table for entry in PERSONAL_TABLES} - {AUDIT_TABLE}
    assert not missing, f"tables with user rows missing from privacy.tables.PERSONAL_TABLES: {sorted(missing)}"


def test_the_models_exempt_from_erasure_are_model_tasks_that_exist() -> None:
    from pipelines.creatives.config import MODEL_NAME

    assert {MODEL_NAME} == MODELS_WITHOUT_PERSONAL_DATA


def test_model_writes_stop_while_an_erasure_they_did_not_see_runs_or_has_completed(store: Engine) -> None:
    seen = newest_erasure(store)
    assert seen is None
    with store.begin() as conn:
        check_no_erasure_since(conn, seen)  # nothing requested: writes go ahead
    (request,) = erasure.request_erasure(store, [2], "test")
    with store.begin() as conn:
        check_no_erasure_since(conn, seen)  # pending only: the user's data is still all there
    erasure._start(store, request)
    with pytest.raises(ErasureInterrupted, match=f"is running \\(request {request}\\)"), store.begin() as conn:
        check_no_erasure_since(conn, seen)
    erasure._complete(store, request)
    with pytest.raises(ErasureInterrupted, match=f"completed \\(request {request}\\)"), store.begin() as conn:
        check_no_erasure_since(conn, seen)
    with store.begin() as conn:
        check_no_erasure_since(conn, newest_erasure(store))  # a run that read after it writes


def test_run_reports_that_quote_the_user_are_rewritten_without_them(store: Engine, tmp_path: Path) -> None:
    reports = tmp_path / "artifacts" / "reports"
    reports.mkdir(parents=True)
    quoting = {"business_date": "2026-06-30", "samples": [{"user_id": 2, "item": 7}, {"user_id": 1, "item": 8}]}
    (reports / "2026-06-30.json").write_text(json.dumps(quoting))
    (reports / "2026-06-29.json").write_text(json.dumps({"samples": [{"user_id": 1}]}))
    untouched = (reports / "2026-06-29.json").read_bytes()

    (done,) = steps.erase_users(store, Settings(state_dir=tmp_path), {"user_ids": [2]}, "test")["completed"]

    assert done["removed"]["report_files"] == 1
    assert json.loads((reports / "2026-06-30.json").read_text())["samples"] == [{"user_id": 1, "item": 8}]
    assert (reports / "2026-06-29.json").read_bytes() == untouched


def test_a_failing_erasure_is_pending_again_with_its_error_and_does_not_hold_back_the_others(
    store: Engine, tmp_path: Path
) -> None:
    with store.begin() as conn:  # a table the registry does not know still points at user 1
        conn.execute(sa.text("CREATE TABLE loyalty (member_id bigint REFERENCES users (user_id))"))
        conn.execute(sa.text("INSERT INTO loyalty VALUES (1)"))
    first, second = erasure.request_erasure(store, [1, 2], "test")

    with pytest.raises(erasure.ErasureFailed, match=f"request {first}: .*loyalty"):
        erasure.process_pending(store, tmp_path)
    with store.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT id, status, last_error FROM erasure_requests"))}
        assert conn.execute(sa.text("SELECT count(*) FROM events WHERE user_id = 1")).scalar_one() == 0
    assert rows[second].status == "completed"
    assert rows[first].status == "pending" and "loyalty" in rows[first].last_error
    with store.begin() as conn:
        check_no_erasure_since(conn, newest_erasure(store))  # a pending request does not stop model writes

    with store.begin() as conn:
        conn.execute(sa.text("DELETE FROM loyalty"))
    (resumed,) = erasure.process_pending(store, tmp_path)
    assert resumed["request"] == first and resumed["removed"]["events"] == 1 and resumed["removed"]["users"] == 1


def test_the_command_line_erases_without_airflow_and_refuses_a_second_request(
    store: Engine,
    database_url_for_test: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PIPELINES_WAREHOUSE_URL", database_url_for_test)
    monkeypatch.setenv("PIPELINES_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", database_url_for_test)  # set so nothing is started

    assert main(["erase", "1", "3"]) == 0
    (first, second) = json.loads(capsys.readouterr().out)["completed"]
    assert (first["removed"]["users"], first["removed"]["events"], second["removed"]["events"]) == (1, 1, 1)
    assert [(r.user_id, r.status) for r in _requests(store)] == [(1, "completed"), (3, "completed")]
    with store.connect() as conn:
        by = set(conn.execute(sa.text("SELECT requested_by FROM erasure_requests")).scalars())
    assert by == {f"pipelines erase ({getpass.getuser()})"}
    assert main(["erase", "3"]) == 2
    assert "erasure already requested for user 3" in capsys.readouterr().err

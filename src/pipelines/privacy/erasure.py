"""Erasure on request: a customer's rows leave every table, artifact and model lineage (GDPR art. 17).

`request_erasure` checks a list of user ids and records one pending request per user, all or none.
`process_pending` erases each pending request in order: it marks the request running (which stops model
tasks from writing outputs they computed from data read before), then, in one transaction per entry of
`tables.PERSONAL_TABLES`, deletes or rewrites the user's rows in every partition of that table (recording
the counts on the request row in the same transaction), rewrites run reports that quote the user, and
finally completes the request: from then on every earlier model run that learned from users is stale and
never warm-starts another (`privacy.models`). Each step is idempotent, so a failed erasure is simply run
again by the next sweep.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.errors import DataError, PipelineError
from pipelines.privacy.models import ERASURE_LOCK
from pipelines.privacy.tables import MODELS_WITHOUT_PERSONAL_DATA, PERSONAL_TABLES, PersonalTable

log = logging.getLogger(__name__)

SWEEP_LOCK = ERASURE_LOCK + 1  # one sweep at a time, so requests complete in order
BIGINT_MAX = 2**63 - 1
REPORTS_FOLDER = "reports"
DATA_DOCS_FOLDER = "data_docs"  # pipelines.quality.gate.DOCS_FOLDER, without importing the gate


class ErasureRequestError(DataError):
    """A list of user ids to erase is malformed, names unknown users, or users already requested."""


def parse_user_ids(value: object) -> list[int]:
    """User ids from a list (of integers or digit strings) or a text of ids separated by commas or spaces."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,;]+", value) if part]
    if not isinstance(value, list | tuple):
        raise ErasureRequestError(f"user ids must be a list of integers, got {value!r}; nothing was requested")
    bad, ids = [], []
    for position, raw in enumerate(value, 1):
        text = raw.strip() if isinstance(raw, str) else raw
        if isinstance(text, str) and text.isdigit():
            text = int(text)
        if isinstance(text, bool) or not isinstance(text, int) or not 0 <= text <= BIGINT_MAX:
            bad.append(f"#{position} {raw!r}")
        else:
            ids.append(text)
    if bad:
        raise ErasureRequestError(
            f"malformed user id list: {', '.join(bad)} not a user id (a non-negative 64-bit integer); "
            "nothing was requested"
        )
    if not ids:
        raise ErasureRequestError("the user id list is empty; nothing was requested")
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ErasureRequestError(
            f"user id(s) {', '.join(map(str, repeated))} appear more than once in the list; nothing was requested"
        )
    return ids


def request_erasure(engine: Engine, user_ids: Iterable[int], requested_by: str) -> list[int]:
    """Record one pending request per user, all in one transaction; returns the request ids.

    Refused, with nothing recorded, when a user is unknown (neither in `users` nor in `events`) or already has
    a request (pending, running or completed).
    """
    ids = list(user_ids)
    with engine.begin() as conn:
        earlier = conn.execute(
            sa.text("SELECT user_id, id, status FROM erasure_requests WHERE user_id = ANY(:ids) ORDER BY user_id"),
            {"ids": ids},
        ).all()
        if earlier:
            listed = ", ".join(f"user {r.user_id} (request {r.id}, {r.status})" for r in earlier)
            raise ErasureRequestError(f"erasure already requested for {listed}; nothing was requested")
        known = set(
            conn.execute(
                sa.text(
                    """SELECT user_id FROM users WHERE user_id = ANY(:ids)
                       UNION SELECT DISTINCT user_id FROM events WHERE user_id = ANY(:ids)"""
                ),
                {"ids": ids},
            ).scalars()
        )
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ErasureRequestError(
                f"unknown user id(s) {', '.join(map(str, unknown))}: not in users and without events; "
                "nothing was requested"
            )
        created = conn.execute(
            sa.text(
                """INSERT INTO erasure_requests (user_id, requested_by)
                   SELECT u, :by FROM unnest(CAST(:ids AS bigint[])) AS u RETURNING id"""
            ),
            {"ids": ids, "by": requested_by},
        ).scalars()
        return sorted(created)


class ErasureFailed(PipelineError):
    """Some requests could not be erased this time; they are pending again and the next sweep retries them."""


def process_pending(engine: Engine, artifacts: Path) -> list[dict[str, Any]]:
    """Erase every request not yet completed, oldest first (one sweep at a time); their summaries.

    A request that fails does not hold back the others: it returns to pending with its error, the rest are
    erased, and then the sweep fails naming it.
    """
    done, failed = [], []
    with _session_lock(engine, SWEEP_LOCK):
        with engine.connect() as conn:
            ids = conn.execute(
                sa.text("SELECT id FROM erasure_requests WHERE status <> 'completed' ORDER BY id")
            ).scalars()
            ids = list(ids)
        for request_id in ids:
            try:
                done.append(erase(engine, request_id, artifacts))
            except Exception as exc:
                log.exception("erasure request %d failed; it is pending again", request_id)
                failed.append(f"request {request_id}: {exc}")
    if failed:
        raise ErasureFailed(f"{len(failed)} erasure(s) failed and will be retried: {'; '.join(failed)}")
    return done


def erase(engine: Engine, request_id: int, artifacts: Path) -> dict[str, Any]:
    """Erase one request's user everywhere and complete the request; returns what was removed (no user id)."""
    user_id = _start(engine, request_id)
    try:
        for entry in PERSONAL_TABLES:
            with engine.begin() as conn:
                if all(_exists(conn, t) for t in (entry.table, entry.through) if t is not None):
                    _record(conn, request_id, ERASERS[entry.kind](conn, entry, user_id, artifacts))
                else:
                    log.info("erasure request %d: no table %s here, skipped", request_id, entry.through or entry.table)
        with engine.begin() as conn:
            _record(conn, request_id, {"report_files": _scrub_reports(artifacts / REPORTS_FOLDER, user_id)})
    except BaseException as exc:
        with engine.begin() as conn:  # back to pending, so the next sweep resumes it and models may write again
            conn.execute(
                sa.text("UPDATE erasure_requests SET status = 'pending', last_error = :e WHERE id = :id"),
                {"e": f"{type(exc).__name__}: {exc}"[:2000], "id": request_id},
            )
        raise
    return _complete(engine, request_id)


def _start(engine: Engine, request_id: int) -> int:
    """Mark the request running once no output write is in flight (they hold the erasure lock shared)."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ERASURE_LOCK})
        row = conn.execute(
            sa.text(
                """UPDATE erasure_requests SET status = 'running', started_at = now()
                   WHERE id = :id AND status <> 'completed' RETURNING user_id"""
            ),
            {"id": request_id},
        ).first()
    if row is None:
        raise ErasureRequestError(f"erasure request {request_id} does not exist or is already completed")
    log.info("erasure request %d: erasing", request_id)
    return row.user_id


def _complete(engine: Engine, request_id: int) -> dict[str, Any]:
    """Complete the request; every date served by a model that learned from users before it becomes stale."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ERASURE_LOCK})
        done = conn.execute(
            sa.text(
                """UPDATE erasure_requests SET status = 'completed', completed_at = now(), last_error = NULL,
                          completed_seq = nextval('erasure_completion_seq')
                   WHERE id = :id RETURNING completed_seq, removed"""
            ),
            {"id": request_id},
        ).one()
        stale = conn.execute(
            sa.text(
                """UPDATE served_lineage s SET stale_reason = :why, stale_at = now()
                   FROM model_runs r
                   WHERE r.model_name = s.model_name AND r.version = s.version
                     AND NOT (s.model_name = ANY(CAST(:exempt AS text[])))
                     AND coalesce((SELECT e.completed_seq FROM erasure_requests e WHERE e.id = r.erasure_seen), 0)
                         < :seq
                   RETURNING s.model_name"""
            ),
            {
                "why": f"served by a model trained before erasure request {request_id} completed; the next run "
                "retrains it without the erased users (cold); rerun this date to refresh it",
                "exempt": sorted(MODELS_WITHOUT_PERSONAL_DATA),
                "seq": done.completed_seq,
            },
        ).scalars()
        marked: dict[str, int] = {}
        for model in stale:
            marked[model] = marked.get(model, 0) + 1
    log.info("erasure request %d completed: removed %s; stale dates per model %s", request_id, done.removed, marked)
    return {"request": request_id, "removed": dict(done.removed), "stale_dates": marked}


def _record(conn: Connection, request_id: int, counts: dict[str, Any]) -> None:
    """Add this step's counts to the request's record, on the step's own transaction."""
    row = conn.execute(
        sa.text("SELECT removed FROM erasure_requests WHERE id = :id FOR UPDATE"), {"id": request_id}
    ).scalar_one()
    removed = dict(row)
    for key, value in counts.items():
        if isinstance(value, list):
            removed[key] = sorted(set(removed.get(key, [])) | set(value))
        else:
            removed[key] = removed.get(key, 0) + value
    conn.execute(
        sa.text("UPDATE erasure_requests SET removed = CAST(:r AS jsonb) WHERE id = :id"),
        {"r": json.dumps(removed, sort_keys=True), "id": request_id},
    )


def _exists(conn: Connection, table: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}).scalar_one()


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _delete(conn: Connection, entry: PersonalTable, user_id: int, artifacts: Path) -> dict[str, int]:
    table, column = _q(conn, entry.table), _q(conn, entry.column)
    if entry.through is None:
        where = f"{column} = :u"
    else:
        where = f"{column} IN (SELECT {column} FROM {_q(conn, entry.through)} WHERE user_id = :u)"
    deleted = conn.execute(sa.text(f"DELETE FROM {table} WHERE {where}"), {"u": user_id}).rowcount
    return {entry.table: deleted}


def _profiles(conn: Connection, entry: PersonalTable, user_id: int, artifacts: Path) -> dict[str, int]:
    """Profiles go, and each segment the user was counted in that day shrinks by one, together."""
    row = conn.execute(
        sa.text(
            """WITH gone AS (DELETE FROM user_profiles WHERE user_id = :u RETURNING as_of_date, segment_id),
                    counts AS (SELECT as_of_date, segment_id, count(*) AS n FROM gone GROUP BY 1, 2),
                    resized AS (UPDATE segments s SET size = greatest(s.size - c.n, 0) FROM counts c
                                WHERE s.as_of_date = c.as_of_date AND s.segment_id = c.segment_id RETURNING 1)
               SELECT (SELECT count(*) FROM gone) AS profiles, (SELECT count(*) FROM resized) AS segments"""
        ),
        {"u": user_id},
    ).one()
    return {entry.table: row.profiles, "segment_sizes_reduced": row.segments}


def _dq_samples(conn: Connection, entry: PersonalTable, user_id: int, artifacts: Path) -> dict[str, Any]:
    """Sample rows that quote the user or one of their events leave `unexpected_sample`; the Data Docs of every
    batch with the user's events and a failed expectation go too (they render the same bad rows, and a rerun
    of the date's data-quality check rebuilds them)."""
    events = [
        str(e)
        for e in conn.execute(
            sa.text("SELECT DISTINCT event_id FROM events WHERE user_id = :u AND event_id IS NOT NULL"),
            {"u": user_id},
        ).scalars()
    ]
    quotes = "(e ->> 'user_id' = :u_text OR e ->> 'event_id' = ANY(CAST(:events AS text[])))"
    rewritten = conn.execute(
        sa.text(
            f"""UPDATE dq_results d SET unexpected_sample = (
                    SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)
                    FROM jsonb_array_elements(d.unexpected_sample) WITH ORDINALITY AS x(e, n) WHERE NOT {quotes})
                WHERE jsonb_typeof(d.unexpected_sample) = 'array'
                  AND EXISTS (SELECT 1 FROM jsonb_array_elements(d.unexpected_sample) AS x(e) WHERE {quotes})"""
        ),
        {"u_text": str(user_id), "events": events},
    ).rowcount
    dates = conn.execute(
        sa.text(
            """SELECT DISTINCT batch_date FROM events WHERE user_id = :u
               INTERSECT SELECT as_of_date FROM dq_results WHERE NOT success ORDER BY 1"""
        ),
        {"u": user_id},
    ).scalars()
    removed = []
    for day in dates:
        folder = artifacts / DATA_DOCS_FOLDER / day.isoformat()
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(day.isoformat())
    return {"dq_samples_rewritten": rewritten, "data_docs_removed": removed}


ERASERS: dict[str, Callable[[Connection, PersonalTable, int, Path], dict[str, Any]]] = {
    "delete": _delete,
    "profiles": _profiles,
    "dq_samples": _dq_samples,
}


def _scrub_reports(folder: Path, user_id: int) -> int:
    """Rewrite JSON reports without the objects that name the user; returns the files rewritten."""
    rewritten = 0
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        before = json.loads(path.read_text())
        after = _without_user(before, user_id)
        if after != before:
            tmp = path.with_name(f".{path.name}.erasure")
            tmp.write_text(json.dumps(after, indent=2, sort_keys=True) + "\n")
            tmp.replace(path)
            rewritten += 1
    return rewritten


def _without_user(value: Any, user_id: int) -> Any:
    if isinstance(value, dict):
        return {k: _without_user(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [
            _without_user(v, user_id)
            for v in value
            if not (isinstance(v, dict) and str(v.get("user_id")) == str(user_id))
        ]
    return value


@contextmanager
def _session_lock(engine: Engine, key: int) -> Iterator[None]:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()

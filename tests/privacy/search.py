"""Searching a whole warehouse and artifact folder for a person, and fingerprinting a warehouse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# The audit record of erasures keeps the erased user's id by design (who was erased, when, what went).
AUDIT_TABLE = "erasure_requests"


def every_table(engine: Engine) -> list[str]:
    """Every ordinary table of the schema, each partition on its own (not the partitioned parents)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname"""
                )
            ).scalars()
        )


def timestamp_texts(timestamps: Iterable[dt.datetime]) -> list[str]:
    """A timestamp as PostgreSQL prints it in a row and as ISO 8601 prints it in JSON (both without the zone)."""
    out = []
    for ts in timestamps:
        utc = ts.astimezone(dt.UTC)
        out += [utc.strftime("%Y-%m-%d %H:%M:%S.%f"), utc.strftime("%Y-%m-%dT%H:%M:%S.%f")]
    return out


def occurrences(engine: Engine, artifacts: Path, user_id: int, timestamps: Iterable[dt.datetime]) -> list[str]:
    """Where the user's id or one of their events' timestamps still appears: tables (every partition, every
    column as text) and every file under `artifacts` (as text, and the id as a little-endian int64, the way a
    tensor in a checkpoint would hold it)."""
    texts = [str(user_id), *timestamp_texts(timestamps)]
    found = []
    with engine.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))  # rows print timestamps in the session's zone
        for table in every_table(engine):
            if table == AUDIT_TABLE:
                continue
            hits = conn.execute(
                sa.text(f'SELECT count(*) FROM "{table}" AS t WHERE t::text LIKE ANY(:p)'),
                {"p": [f"%{text}%" for text in texts]},
            ).scalar_one()
            if hits:
                found.append(f"table {table}: {hits} row(s)")
    needles = [t.encode() for t in texts] + [user_id.to_bytes(8, "little", signed=True)]
    for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(needle in data for needle in needles):
            found.append(f"file {path.relative_to(artifacts)}")
    return found


def fingerprint(engine: Engine) -> dict[str, str]:
    """An ordered md5 of every table's rows: equal fingerprints mean nothing changed."""
    with engine.connect() as conn:
        return {
            table: conn.execute(
                sa.text(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t")
            ).scalar_one()
            for table in every_table(engine)
        }

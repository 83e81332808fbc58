"""Numbered DDL files from sql/, applied in order, each once, recorded in `schema_migrations`.

All pending files apply in one transaction under an advisory lock: two set-ups racing (an Airflow init
container and a developer) cannot both apply a file, and a failing file leaves the schema as it was.
An applied file whose text changed is refused: schema history is append-only.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import MigrationError
from pipelines.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_ROOT / "sql"
_FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 7_301_985_312  # arbitrary, constant: pg_advisory_xact_lock key for migrations


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicated version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNN_snake_case.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, path)
    return [found[v] for v in sorted(found)]


def apply_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply the pending files; return their names (empty when the schema is current)."""
    migrations = discover(sql_dir)
    applied_now: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        conn.exec_driver_sql(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   filename text NOT NULL,
                   sha256 text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {v: h for v, h in conn.execute(sa.text("SELECT version, sha256 FROM schema_migrations"))}
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.sha256:
                    raise MigrationError(
                        f"{migration.path.name} was changed after it was applied; "
                        "add a new numbered file instead of editing an applied one"
                    )
                continue
            conn.exec_driver_sql(migration.path.read_text())
            conn.execute(
                sa.text("INSERT INTO schema_migrations (version, filename, sha256) VALUES (:v, :f, :s)"),
                {"v": migration.version, "f": migration.path.name, "s": migration.sha256},
            )
            applied_now.append(migration.path.name)
    for name in applied_now:
        log.info("applied migration %s", name)
    return applied_now

"""Retention: every output table keeps its partitions for a window of days, and older ones are dropped whole.

Run daily as of a business date D (the forget_users DAG's scheduled run): a table with a window of N days
keeps the partitions of D-N+1 .. D (and any later ones) and drops the rest with DROP TABLE, one transaction per
table, never deleting row by row. The Data Docs of a dropped `dq_results` date go with it (they show the
same bad rows). Source tables are landing tables without partitions; their retention is the loader's.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import ConfigError
from pipelines.privacy.erasure import DATA_DOCS_FOLDER

log = logging.getLogger(__name__)

# Days of partitions kept per table (README "Erasure and retention"). Personal outputs (profiles, per-user
# recommendations, quoted bad rows) go soonest; aggregates stay longer for drift and effect comparisons.
DEFAULT_RETENTION_DAYS: dict[str, int] = {
    "user_profiles": 35,
    "recommendations": 35,
    "dq_results": 90,
    "segments": 400,
    "ad_creatives": 400,
    "delivery_plan": 400,
    "effect_reports": 800,
}
# Artifact folders named by date that hold the same data as a table's partitions.
DATED_ARTIFACTS: dict[str, str] = {"dq_results": DATA_DOCS_FOLDER}


@dataclass(frozen=True)
class RetentionConfig:
    """days: table -> the number of most recent business dates whose partitions are kept."""

    days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))

    def __post_init__(self) -> None:
        for table, days in self.days.items():
            if isinstance(days, bool) or not isinstance(days, int) or days < 1:
                raise ConfigError(f"the retention window of {table} must be a whole number of days >= 1, got {days!r}")

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Any] | None) -> RetentionConfig:
        """The defaults with some tables' windows replaced, e.g. {"recommendations": 14}."""
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ConfigError(f"retention overrides must be an object of table -> days, got {overrides!r}")
        return cls({**DEFAULT_RETENTION_DAYS, **(overrides or {})})


def partitioned_tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    """SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = current_schema() AND NOT c.relispartition"""
                )
            ).scalars()
        )


def enforce_retention(engine: Engine, as_of: dt.date, artifacts: Path, config: RetentionConfig) -> dict[str, Any]:
    """Drop every partition older than its table's window as of `as_of`; returns the dropped dates per table."""
    from pipelines.warehouse.partitions import day_partitions

    present = partitioned_tables(engine)
    unknown = sorted(set(config.days) - present - set(DEFAULT_RETENTION_DAYS))
    if unknown:
        raise ConfigError(
            f"retention names table(s) {', '.join(unknown)} that are not partitioned tables of this warehouse; "
            f"known: {', '.join(sorted(present))}"
        )
    for table in sorted(present - set(config.days)):
        log.warning("retention: %s has no window; its partitions are kept", table)
    dropped: dict[str, list[str]] = {}
    for table, days in sorted(config.days.items()):
        if table not in present:
            continue
        cutoff = as_of - dt.timedelta(days=days)
        with engine.begin() as conn:
            old = {day: name for day, name in day_partitions(conn, table).items() if day <= cutoff}
            if old:
                quote = conn.dialect.identifier_preparer.quote
                conn.execute(sa.text(f"DROP TABLE {', '.join(quote(name) for name in old.values())}"))
        if folder := DATED_ARTIFACTS.get(table):
            _remove_dated_folders(artifacts / folder, cutoff)
        dropped[table] = [day.isoformat() for day in old]
        if old:
            log.info("retention as of %s: dropped %d %s partition(s) up to %s (window %d days)",
                     as_of, len(old), table, max(old), days)  # fmt: skip
    return {"as_of": as_of.isoformat(), "dropped": dropped}


def _remove_dated_folders(root: Path, cutoff: dt.date) -> None:
    for folder in sorted(root.glob("????-??-??")) if root.exists() else []:
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        if day <= cutoff:
            shutil.rmtree(folder)

"""Loads never bring an erased customer back: every source load drops the rows of users whose erasure is
running or completed, on the load's own transaction.

`ErasedUsers(conn)` takes the erasure lock shared for the rest of the load's transaction (so no erasure
starts until the load commits; one that starts later finds the loaded rows and removes them) and reads the
erased users; `frames(table, frames)` then filters each frame the load writes, by the user column of the
table's `PERSONAL_TABLES` entry, or, for a table reached through another (outcomes through impressions), by
the keys of that table's rows it dropped earlier in the same load. A pending request's user is loaded:
their erasure, which waits for the load, removes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines.privacy.models import ERASURE_LOCK
from pipelines.privacy.tables import PERSONAL_TABLES, PersonalTable

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

ERASED_STATUSES = ("running", "completed")
_ENTRIES: dict[str, PersonalTable] = {entry.table: entry for entry in PERSONAL_TABLES}


class ErasedUsers:
    """The users erased (or being erased) as seen by one load's transaction, and what the load skipped."""

    def __init__(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": ERASURE_LOCK})
        self.ids = frozenset(
            conn.execute(
                sa.text("SELECT user_id FROM erasure_requests WHERE status = ANY(:s)"), {"s": list(ERASED_STATUSES)}
            ).scalars()
        )
        self.skipped: dict[str, int] = {}
        self._met: set[int] = set()  # erased users whose rows this load held
        self._dropped_keys: dict[str, set] = {}  # table -> keys of its dropped rows, for tables reached through it
        self._filtered: set[str] = set()

    def frames(self, table: str, frames: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        """`frames` without the rows of erased users, lazily; tables without personal data pass unchanged."""
        entry = _ENTRIES.get(table)
        if entry is not None and entry.kind != "delete":
            raise ValueError(f"{table} is not a table of user rows that a load writes: its writer checks erasures")
        if entry is not None and entry.through is not None and entry.through not in self._filtered:
            raise ValueError(f"load {entry.through} before {table}: {table} rows are found through its rows")
        self._filtered.add(table)
        return frames if entry is None or not self.ids else self._without_erased(entry, frames)

    def _without_erased(self, entry: PersonalTable, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        table = entry.table
        keyed_by = [e.column for e in PERSONAL_TABLES if e.through == table]  # outcomes name impression_id
        for frame in frames:
            if entry.through is None:
                drop = frame[entry.column].isin(self.ids)
                self._met.update(int(u) for u in frame.loc[drop, entry.column].unique())
            else:
                drop = frame[entry.column].isin(self._dropped_keys.get(entry.through, set()))
            for column in keyed_by:
                self._dropped_keys.setdefault(table, set()).update(frame.loc[drop, column].dropna())
            if dropped := int(drop.sum()):
                self.skipped[table] = self.skipped.get(table, 0) + dropped
                frame = frame.loc[~drop]
            yield frame

    @property
    def erased_users(self) -> int:
        """How many erased users the skipped rows belonged to."""
        return len(self._met)

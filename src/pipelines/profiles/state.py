"""The profile VAE's input kept per (user, item) pair and moved day by day (`sql/016_profile_state.sql`).

A daily run reads one row per pair with events in the window, O(users), instead of every event of the window.

Each event contributes an integer term, round(type weight x 2^((event_ts - anchor) / half-life + scale_bits)),
computed by PostgreSQL. Integer sums are exact and order-free, so the state of a date is the same integers
whichever way it was reached: summed from the window's events, moved from another date (add the days that
enter, subtract the days that leave), or corrected by the trigger's log of changes to days it holds (late
events, a reloaded batch, an erasure). A backfill therefore gets bit for bit the input the daily run got. The
anchor is the first day of an era of `era_days`; a pair's weight as of a date is q x 2^-(scale_bits + age of
the anchor at the end of the date / half-life), the event weight `profiles.matrix` defines, to ~2^-30 relative.
Within an era terms never exceed 2^(8 + scale_bits) x the largest type weight, so 2^20 events of one pair fit
in a bigint; crossing into a new era rebuilds the state once from the window.

One state is stored, as of the newest date maintained (`refresh`); reads of other dates (`pairs_as_of`)
move from it in the query when that reads fewer days than the window, else sum the window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import DataError
from pipelines.progress import heartbeat
from pipelines.warehouse.copy_read import copy_arrays
from pipelines.warehouse.reads import day_bounds

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

    from pipelines.profiles.config import ProfileConfig

log = logging.getLogger(__name__)

_EPOCH = dt.date(1970, 1, 1)
_ERA_HALF_LIVES = 8  # an era spans this many half-lives: the newest term is at most 2^8 x the anchor's
_COUNT_BITS = 20  # events of one pair in a window that a bigint sum must hold
_SECONDS_PER_DAY = 86_400.0
_UNTRACKED = "untracked"


@dataclass(frozen=True)
class Spec:
    """How events become terms; a state built under another spec is rebuilt."""

    weights: tuple[tuple[str, float], ...]  # (event type, weight > 0), sorted
    half_life_days: float
    window_days: int

    @classmethod
    def of(cls, config: ProfileConfig) -> Spec:
        weights = tuple(sorted((t, float(w)) for t, w in config.event_weights.items() if w > 0))
        return cls(weights, float(config.recency_half_life_days), int(config.history_days))

    @property
    def era_days(self) -> int:
        return max(1, int(_ERA_HALF_LIVES * self.half_life_days))

    @property
    def scale_bits(self) -> int:
        largest = max(w for _, w in self.weights)
        return 62 - _COUNT_BITS - _ERA_HALF_LIVES - math.ceil(math.log2(largest))

    @property
    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self) | {"scale_bits": self.scale_bits, "era_days": self.era_days})

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.weights]

    def anchor(self, day: dt.date) -> dt.date:
        return _EPOCH + dt.timedelta(days=(day - _EPOCH).days // self.era_days * self.era_days)

    def first_day(self, day: dt.date) -> dt.date:
        return day - dt.timedelta(days=self.window_days - 1)

    def decode(self, q: np.ndarray, day: dt.date, anchor: dt.date) -> np.ndarray:
        """Weights as of the end of `day` from q summed with `anchor`."""
        age_days = (day + dt.timedelta(days=1) - anchor).days
        return q.astype(np.float64) * 2.0 ** (-self.scale_bits - age_days / self.half_life_days)

    def term(self, sign: str, anchor: dt.date) -> str:
        """SQL of one event row's signed term (`sign`: an SQL expression of +1 or -1)."""
        cases = " ".join(f"WHEN {_literal(t)} THEN {w!r}::float8" for t, w in self.weights)
        seconds = self.half_life_days * _SECONDS_PER_DAY
        anchor_ts = _literal(day_bounds(anchor)[0].isoformat())
        return (
            f"({sign})::bigint * round((CASE event_type {cases} END) * power(2::float8, "
            f"extract(epoch FROM event_ts - {anchor_ts}::timestamptz)::float8 / {seconds!r}::float8 "
            f"+ {self.scale_bits}))::bigint"
        )


@dataclass(frozen=True)
class PairState:
    """Pairs with events in the window ending with `as_of`: each pair's weight and (with activity) its number
    of weighted events and latest event time."""

    as_of: dt.date
    user_id: np.ndarray  # int64
    item_id: np.ndarray  # int64
    weight: np.ndarray  # float64
    events: np.ndarray | None = None  # int32
    last_ts: np.ndarray | None = None  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.user_id)

    def keep(self, mask: np.ndarray) -> PairState:
        return PairState(
            self.as_of,
            self.user_id[mask],
            self.item_id[mask],
            self.weight[mask],
            None if self.events is None else self.events[mask],
            None if self.last_ts is None else self.last_ts[mask],
        )


@dataclass(frozen=True)
class _Stored:
    as_of: dt.date | None
    anchor: dt.date | None
    key: str | None
    pending_changes: bool

    def serves(self, spec: Spec, day: dt.date) -> bool:
        """Whether moving from this state to `day` reads fewer event days than summing `day`'s window."""
        if self.as_of is None or self.key != spec.key or self.anchor != spec.anchor(day):
            return False
        return 4 * abs((day - self.as_of).days) <= spec.window_days


@contextlib.contextmanager
def _overflow_named() -> Iterator[None]:
    """A pair whose sum leaves a bigint (over 2^20 weighted events in one window) fails with what it means;
    the transaction rolls back, so the stored state stays as it was."""
    import psycopg2.errors

    try:
        yield
    except psycopg2.errors.NumericValueOutOfRange as error:
        raise DataError(
            f"a (user, item) pair's weighted events overflow the profile state's integer sum ({error.pgerror}); "
            f"over 2^{_COUNT_BITS} events of one pair in the window: check the events for a replayed feed"
        ) from error


def refresh(engine: Engine, day: dt.date, spec: Spec) -> str:
    """Bring the stored state to `day` when `day` is not before it (and apply logged changes either way).

    One transaction holding the meta row FOR UPDATE: writers of `events` wait in their trigger, so a change is
    either part of what this reads or logged against the new date. Returns what was done, for the task log.
    """
    started = time.perf_counter()
    with engine.connect() as conn:  # the common case, nothing to do, without blocking readers
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            stored = _stored(cursor, "FOR SHARE")
        finally:
            cursor.close()
    if stored.key == spec.key and stored.as_of is not None and day <= stored.as_of and not stored.pending_changes:
        return f"profile state current as of {stored.as_of}"
    if stored.key == _UNTRACKED:
        log.warning("events has no change trigger (sql/016; a view?): each profile read sums the window")
        return "profile state not kept: events has no change trigger"
    with _overflow_named(), engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            stored = _stored(cursor, "FOR UPDATE")
            if stored.key == spec.key and stored.as_of is not None and day <= stored.as_of:
                target, action = stored.as_of, "changes applied" if stored.pending_changes else "current"
            else:
                target = day
                action = "moved" if stored.serves(spec, day) else "rebuilt"
            pairs = 0
            if action == "rebuilt":  # the key is built after the rows: a third of the time of inserting into it
                cursor.execute("TRUNCATE profile_state")
                cursor.execute("ALTER TABLE profile_state DROP CONSTRAINT profile_state_pkey")
                with heartbeat(f"summing the profile window of {target} into the state", log):
                    cursor.execute(
                        "INSERT INTO profile_state (user_id, item_id, q, n, last_ts) " + _window_sql(spec, target, True)
                    )
                    pairs = cursor.rowcount
                    cursor.execute("ALTER TABLE profile_state ADD PRIMARY KEY (user_id, item_id)")
                    cursor.execute("ANALYZE profile_state")
            elif action != "current":
                assert stored.as_of is not None and stored.anchor is not None
                with heartbeat(f"moving the profile state from {stored.as_of} to {target}", log):
                    pairs = _merge(cursor, spec, stored.as_of, target, stored.anchor)
            cursor.execute("DELETE FROM profile_state_changes")
            cursor.execute(
                "UPDATE profile_state_meta SET as_of = %s, window_days = %s, anchor = %s, spec = %s, "
                "server_started = pg_postmaster_start_time(), updated_at = now() WHERE id = 1",
                (target, spec.window_days, spec.anchor(target), spec.key),
            )
        finally:
            cursor.close()
    written = "pairs" if action == "rebuilt" else "pairs changed"
    summary = f"profile state {action} as of {target}: {pairs:,} {written} in {time.perf_counter() - started:.1f} s"
    log.info("%s", summary)
    return summary


def pairs_as_of(engine: Engine, day: dt.date, spec: Spec, *, activity: bool = True) -> PairState:
    """The state as of `day`, exactly as summing its window would give, read in one statement."""
    started = time.perf_counter()
    columns = [("user_id", "int8"), ("item_id", "int8"), ("q", "int8")]
    if activity:
        columns += [("n", "int4"), ("last_ts", "timestamptz")]
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            stored = _stored(cursor, "FOR SHARE")  # held until the read ends: no maintenance moves it meanwhile
            if stored.serves(spec, day):
                assert stored.as_of is not None and stored.anchor is not None
                anchor = stored.anchor
                if stored.as_of == day and not stored.pending_changes:
                    query, how = f"SELECT {', '.join(c for c, _ in columns)} FROM profile_state", "the stored state"
                else:
                    query = _moved_sql(spec, stored.as_of, day, anchor, activity)
                    how = f"moved from the state of {stored.as_of}"
            else:
                anchor = spec.anchor(day)
                query, how = _window_sql(spec, day, activity), f"summed over the window from {spec.first_day(day)}"
            with _overflow_named(), heartbeat(f"reading the profile pairs as of {day} ({how})", log):
                arrays = copy_arrays(cursor, query, columns)
        finally:
            cursor.close()
    state = PairState(
        day,
        arrays["user_id"],
        arrays["item_id"],
        spec.decode(arrays["q"], day, anchor),
        arrays.get("n"),
        arrays.get("last_ts"),
    )
    log.info("profile pairs as of %s (%s): %d pairs in %.1f s", day, how, len(state), time.perf_counter() - started)
    return state


def _stored(cursor: object, lock: str) -> _Stored:
    """The stored state's date and spec; none where `events` has no change trigger (a team's view over its
    own tables): a state could not see late changes there, so every read sums the window."""
    cursor.execute(  # type: ignore[attr-defined]
        f"SELECT as_of, anchor, spec, EXISTS (SELECT 1 FROM profile_state_changes), "
        f"EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_profile_state_delete' "
        f"AND tgrelid = to_regclass('events')), server_started IS NOT DISTINCT FROM pg_postmaster_start_time() "
        f"FROM profile_state_meta WHERE id = 1 {lock} OF profile_state_meta"
    )
    as_of, anchor, key, pending, tracked, same_server = cursor.fetchone()  # type: ignore[attr-defined]
    if not tracked:
        return _Stored(None, None, _UNTRACKED, False)
    if not same_server:  # the unlogged state may have been emptied by a crash since
        return _Stored(None, None, None, False)
    return _Stored(as_of, anchor, key, bool(pending))


def _window_sql(spec: Spec, day: dt.date, activity: bool) -> str:
    """Every pair of the window ending with `day`, summed from the events."""
    activity_columns = ", count(*)::int AS n, max(event_ts) AS last_ts" if activity else ""
    return (
        f"SELECT user_id, item_id, sum({spec.term('1', spec.anchor(day))})::bigint AS q{activity_columns} "
        f"FROM events WHERE {_events_between(spec, spec.first_day(day), day)} GROUP BY user_id, item_id"
    )


def _delta_sql(spec: Spec, stored: dt.date, target: dt.date, anchor: dt.date) -> str:
    """Per pair, what turns the stored state (plus the logged changes) into the state of `target`.

    `stale`: a term left that may have been the pair's latest event, so its last_ts is looked up again.
    """
    parts = [
        f"SELECT user_id, item_id, {spec.term('sign', anchor)} AS q, sign::int AS n, "
        f"CASE WHEN sign > 0 THEN event_ts END AS ts, sign < 0 AS stale FROM profile_state_changes "
        f"WHERE event_type = ANY({_types(spec)}) AND user_id IS NOT NULL AND item_id IS NOT NULL "
        f"AND event_ts IS NOT NULL"
    ]
    target_first = spec.first_day(target)
    for sign, first, last in _moves(spec, stored, target):
        newest_left = sign < 0 and first > target_first
        parts.append(
            f"SELECT user_id, item_id, {spec.term(str(sign), anchor)} AS q, {sign} AS n, "
            f"{'event_ts' if sign > 0 else 'NULL::timestamptz'} AS ts, {'true' if newest_left else 'false'} "
            f"FROM events WHERE {_events_between(spec, first, last)}"
        )
    return (
        "SELECT user_id, item_id, sum(q)::bigint AS q, sum(n)::int AS n, max(ts) AS last_ts, bool_or(stale) AS stale "
        f"FROM ({' UNION ALL '.join(parts)}) AS t GROUP BY user_id, item_id"
    )


def _moved_sql(spec: Spec, stored: dt.date, target: dt.date, anchor: dt.date, activity: bool) -> str:
    n = "coalesce(s.n, 0) + coalesce(d.n, 0)"
    columns = "coalesce(s.user_id, d.user_id), coalesce(s.item_id, d.item_id), coalesce(s.q, 0) + coalesce(d.q, 0)"
    if activity:
        columns += f", {n}, CASE WHEN d.stale THEN {_latest_sql(spec, target, 'coalesce(s.user_id, d.user_id)', 'coalesce(s.item_id, d.item_id)')} ELSE greatest(s.last_ts, d.last_ts) END"  # noqa: E501
    return (
        f"SELECT {columns} FROM profile_state AS s FULL JOIN ({_delta_sql(spec, stored, target, anchor)}) AS d "
        f"ON s.user_id = d.user_id AND s.item_id = d.item_id WHERE {n} > 0"
    )


def _merge(cursor: object, spec: Spec, stored: dt.date, target: dt.date, anchor: dt.date) -> int:
    """Move the stored state to `target` in place: only the pairs that changed are written (their number)."""
    execute = cursor.execute  # type: ignore[attr-defined]
    execute(f"CREATE TEMP TABLE profile_state_delta ON COMMIT DROP AS {_delta_sql(spec, stored, target, anchor)}")
    execute(
        """MERGE INTO profile_state AS s USING profile_state_delta AS d
           ON s.user_id = d.user_id AND s.item_id = d.item_id
           WHEN MATCHED AND s.n + d.n <= 0 THEN DELETE
           WHEN MATCHED THEN UPDATE SET q = s.q + d.q, n = s.n + d.n, last_ts = greatest(s.last_ts, d.last_ts)
           WHEN NOT MATCHED AND d.n > 0 THEN
               INSERT (user_id, item_id, q, n, last_ts) VALUES (d.user_id, d.item_id, d.q, d.n, d.last_ts)"""
    )
    changed = int(cursor.rowcount)  # type: ignore[attr-defined]
    execute(
        f"UPDATE profile_state AS s SET last_ts = {_latest_sql(spec, target, 's.user_id', 's.item_id')} "
        "FROM profile_state_delta AS d WHERE d.stale AND s.user_id = d.user_id AND s.item_id = d.item_id"
    )
    return changed


def _latest_sql(spec: Spec, day: dt.date, user: str, item: str) -> str:
    return (
        f"(SELECT max(e.event_ts) FROM events AS e WHERE e.user_id = {user} AND e.item_id = {item} AND "
        f"{_events_between(spec, spec.first_day(day), day, 'e.')})"
    )


def _moves(spec: Spec, stored: dt.date, target: dt.date) -> list[tuple[int, dt.date, dt.date]]:
    """Signed day ranges that turn the window of `stored` into the window of `target`."""
    old = (spec.first_day(stored), stored)
    new = (spec.first_day(target), target)
    return [(-1, a, b) for a, b in _minus(old, new)] + [(1, a, b) for a, b in _minus(new, old)]


def _minus(x: tuple[dt.date, dt.date], y: tuple[dt.date, dt.date]) -> list[tuple[dt.date, dt.date]]:
    one = dt.timedelta(days=1)
    parts = [(x[0], min(x[1], y[0] - one)), (max(x[0], y[1] + one), x[1])]
    return [(a, b) for a, b in parts if a <= b]


def _events_between(spec: Spec, first: dt.date, last: dt.date, prefix: str = "") -> str:
    start, end = day_bounds(first)[0], day_bounds(last)[1]
    return (
        f"{prefix}event_ts >= {_literal(start.isoformat())}::timestamptz AND "
        f"{prefix}event_ts < {_literal(end.isoformat())}::timestamptz AND "
        f"{prefix}event_type = ANY({_types(spec)}) AND {prefix}user_id IS NOT NULL AND {prefix}item_id IS NOT NULL"
    )


def _types(spec: Spec) -> str:
    return "ARRAY[" + ", ".join(_literal(t) for t in spec.types) + "]::text[]"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

"""Bulk writes with COPY: append frames to a table, or atomically replace one business date's partition.

`replace_partition` creates the day's partition on first use, empties it (or just the rows of one scope,
such as one campaign) and streams the new rows in with COPY, all in one transaction: readers see the old
rows until the commit and the new rows after it, and a failure at any point leaves the old rows intact.

A date's partition can also be written in user shards (`begin_shards`, `write_shard`, `publish_shards`):
each shard commits its rows to its own table of a staging table hash-partitioned by user id, readers keep
seeing the previous partition, and publishing swaps the staging table in as the date's partition by
renaming and attaching (catalog changes only: its time does not grow with the rows) on the caller's
transaction.

Both write with binary COPY (`binary_copy`) when the table's catalog types of a frame's columns allow it,
else with CSV; a background thread encodes the next frame while the server ingests the current one.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from psycopg2 import sql
from sqlalchemy.engine import Connection, Engine

from pipelines.warehouse.binary_copy import binary_encoders, column_types, encode_frame
from pipelines.warehouse.prefetch import prefetch

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

NULL = r"\N"
READ_SIZE = 1 << 20  # bytes handed to libpq per call: few GIL hand-overs with the encoding thread


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_partitions(conn: Connection, table: str) -> dict[dt.date, str]:
    """The day partitions of `table` that `replace_partition` created, by day (other partitions are left out)."""
    import sqlalchemy as sa

    names = conn.execute(
        sa.text(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = to_regclass(:t)"""
        ),
        {"t": table},
    ).scalars()
    days = {}
    for name in names:
        try:
            day = dt.datetime.strptime(name.removeprefix(f"{table}_p"), "%Y%m%d").date()
        except ValueError:
            continue
        if partition_name(table, day) == name:
            days[day] = name
    return dict(sorted(days.items()))


class ShardError(RuntimeError):
    """A sharded write that cannot go on: no staging table, or shards missing at publish."""


def staging_name(table: str, day: dt.date) -> str:
    return f"{partition_name(table, day)}_staged"


def shard_name(table: str, day: dt.date, shard: int, shards: int, *, staged: bool = True) -> str:
    return f"{staging_name(table, day) if staged else partition_name(table, day)}_s{shard}of{shards}"


def _frames(frames: pd.DataFrame | Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
    import pandas as pd

    return [frames] if isinstance(frames, pd.DataFrame) else frames


def _csv(frame: pd.DataFrame) -> io.StringIO:
    """CSV for COPY: NULL as \\N, bytes as bytea hex, lists as PostgreSQL array literals."""
    import pandas as pd

    out = frame.copy(deep=False)
    for column in out.columns:
        series = out[column]
        if series.dtype == object and len(series):
            sample = series.dropna()
            first = sample.iloc[0] if len(sample) else None
            if isinstance(first, bytes | bytearray | memoryview):
                out[column] = series.map(lambda v: None if v is None else "\\x" + bytes(v).hex())
            elif isinstance(first, list | tuple):
                out[column] = series.map(_array_literal)
            elif isinstance(first, dict):
                import json

                out[column] = series.map(lambda v: None if v is None else json.dumps(v, sort_keys=True))
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            out[column] = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f%z")
    buffer = io.StringIO()
    out.to_csv(buffer, header=False, index=False, na_rep=NULL)
    buffer.seek(0)
    return buffer


def _array_literal(value: object) -> str | None:
    if value is None:
        return None
    items = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)  # type: ignore[attr-defined]
    return "{" + items + "}"


def _copy(cursor: object, table: str, target: sql.Composable, frames: Iterable[pd.DataFrame]) -> int:
    """COPY `frames` into `target` (`table` or one of its partitions), encoding one frame ahead."""
    encoders = binary_encoders(column_types(cursor, table))

    def encoded(frame: pd.DataFrame) -> tuple[int, sql.Composable, io.IOBase]:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
        payload = encode_frame(frame, table, encoders) if set(frame.columns) <= encoders.keys() else None
        log.debug("COPY %d rows into %s as %s", len(frame), table, "csv" if payload is None else "binary")
        if payload is None:
            statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL {})")
            return len(frame), statement.format(target, columns, sql.Literal(NULL)), _csv(frame)
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(target, columns)
        return len(frame), statement, io.BytesIO(payload)

    written = 0
    for rows, statement, payload in prefetch(encoded(f) for f in frames if len(f)):
        cursor.copy_expert(statement, payload, size=READ_SIZE)  # type: ignore[attr-defined]
        written += rows
    return written


def copy_frames(conn: Connection, table: str, frames: pd.DataFrame | Iterable[pd.DataFrame]) -> int:
    """Append frames to `table` with COPY on the caller's transaction. Returns the number of rows."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return _copy(cursor, table, sql.Identifier(table), _frames(frames))
    finally:
        cursor.close()


def replace_partition(
    engine: Engine | Connection,
    table: str,
    day: dt.date,
    frames: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    date_column: str = "as_of_date",
    scope: Mapping[str, object] | None = None,
) -> int:
    """Replace the rows of `table` for `day` (and `scope`, when given) with `frames`, atomically.

    The frames may omit `date_column` and the scope columns (they are filled in); rows that carry a
    different date or scope are refused before anything is written. Returns the number of rows written.
    Given a Connection, it writes on the caller's transaction (several outputs committed together).
    """
    scope = dict(scope or {})
    partition = partition_name(table, day)
    with _transaction(engine) as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES {}").format(
                    sql.Identifier(partition), sql.Identifier(table), _day_range(day)
                )
            )
            if scope:
                condition = sql.SQL(" AND ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in scope.items()
                )
                cursor.execute(sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(partition), condition))
            else:
                cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(partition)))
            constants = {date_column: day, **scope}
            filled = (_with_constants(f, constants) for f in _frames(frames) if len(f))
            written = _copy(cursor, table, sql.Identifier(partition), filled)
        finally:
            cursor.close()
    log.info("replaced %s for %s%s: %d rows", table, day, f" {scope}" if scope else "", written)
    return written


def _day_range(day: dt.date) -> sql.Composable:
    return sql.SQL("FROM ({}) TO ({})").format(sql.Literal(day), sql.Literal(day + dt.timedelta(days=1)))


@contextmanager
def _transaction(engine: Engine | Connection) -> Iterator[Connection]:
    if isinstance(engine, Connection):
        yield engine
    else:
        with engine.begin() as conn:
            yield conn


def _with_constants(frame: pd.DataFrame, constants: Mapping[str, object]) -> pd.DataFrame:
    import pandas as pd

    frame = frame.copy(deep=False)
    for column, value in constants.items():
        if column not in frame.columns:
            frame[column] = value
            continue
        present = frame[column]
        if isinstance(value, dt.date):
            present = pd.to_datetime(present).dt.date
        if not (present == value).all():
            wrong = frame.loc[present != value, column].iloc[0]
            raise ValueError(f"{column}={wrong!r} in rows written for {column}={value!r}")
    return frame


def begin_shards(
    engine: Engine, table: str, day: dt.date, *, key: str = "user_id", date_column: str = "as_of_date"
) -> None:
    """(Re)create the date's empty staging table: `table`'s columns, keys, indexes and foreign keys,
    hash-partitioned by `key`, with a CHECK on the date so attaching it later needs no scan."""
    staging = staging_name(table, day)
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
                    " PARTITION BY HASH ({})"
                ).format(sql.Identifier(staging), sql.Identifier(table), sql.Identifier(key))
            )
            cursor.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {})").format(
                    sql.Identifier(staging),
                    sql.Identifier(f"{staging}_day"),
                    sql.Identifier(date_column),
                    sql.Literal(day),
                    sql.Identifier(date_column),
                    sql.Literal(day + dt.timedelta(days=1)),
                )
            )
            # The parent's foreign keys, so that attaching the staging table finds them and checks nothing.
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                (table,),
            )
            for (definition,) in cursor.fetchall():
                cursor.execute(sql.SQL("ALTER TABLE {} ADD ").format(sql.Identifier(staging)) + sql.SQL(definition))
        finally:
            cursor.close()


def shard_members(engine: Engine, table: str, day: dt.date, shards: int, shard: int, ids: object) -> object:
    """Which of `ids` (an int64 array) fall into `shard` of `shards`: PostgreSQL's own hash partitioning of
    the staging table decides, so the rows a shard writes are exactly those its table accepts."""
    import numpy as np

    ids = np.asarray(ids, dtype=np.int64)
    if shards == 1:
        return np.ones(len(ids), dtype=bool)
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT u FROM unnest(%s::bigint[]) AS u WHERE satisfies_hash_partition(%s::regclass::oid, %s, %s, u)",
                ("{" + ",".join(map(str, ids.tolist())) + "}", staging_name(table, day), shards, shard),
            )
            members = np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64)
        finally:
            cursor.close()
    return np.isin(ids, members)


def write_shard(
    engine: Engine,
    table: str,
    day: dt.date,
    shard: int,
    shards: int,
    frames: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    date_column: str = "as_of_date",
) -> int:
    """Write one shard of the date's rows into the staging table, in one transaction; returns its rows.

    The rows go into a fresh table that is attached to the staging table at the end, which checks them
    against the shard's hash range and builds the shard's indexes. A shard killed at any point leaves no
    rows behind; a retried shard replaces what an earlier attempt committed.
    """
    if not 0 <= shard < shards:
        raise ShardError(f"shard {shard} is outside 0..{shards - 1}")
    staging, part = staging_name(table, day), shard_name(table, day, shard, shards)
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("SELECT to_regclass(%s)", (staging,))
            if cursor.fetchone()[0] is None:
                raise ShardError(f"no staging table {staging}: the task's training step prepares it before shards")
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(part)))
            cursor.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                    sql.Identifier(part), sql.Identifier(staging)
                )
            )
            filled = (_with_constants(f, {date_column: day}) for f in _frames(frames) if len(f))
            written = _copy(cursor, table, sql.Identifier(part), filled)
            cursor.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(
                    sql.Identifier(staging), sql.Identifier(part), sql.Literal(shards), sql.Literal(shard)
                )
            )
        finally:
            cursor.close()
    log.info("wrote shard %d/%d of %s for %s: %d rows", shard, shards, table, day, written)
    return written


def publish_shards(conn: Connection, table: str, day: dt.date, shards: int) -> None:
    """Make the staged shards the date's partition of `table` on the caller's transaction.

    Refuses unless all `shards` are staged; the previous partition is dropped, the staging table renamed
    and attached. Only catalog rows change, so the time does not grow with the number of rows.
    """
    staging, partition = staging_name(table, day), partition_name(table, day)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            (staging,),
        )
        staged = {row[0] for row in cursor.fetchall()}
        missing = [i for i in range(shards) if shard_name(table, day, i, shards) not in staged]
        if missing:
            raise ShardError(
                f"{table} for {day}: shard(s) {missing} of {shards} are not staged; "
                "the previous partition stays until every shard has been written"
            )
        cursor.execute("SELECT to_regclass(%s)", (partition,))
        if cursor.fetchone()[0] is not None:
            cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))
        cursor.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(partition))
        )
        for i in range(shards):
            cursor.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(shard_name(table, day, i, shards)),
                    sql.Identifier(shard_name(table, day, i, shards, staged=False)),
                )
            )
        cursor.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES {}").format(
                sql.Identifier(table), sql.Identifier(partition), _day_range(day)
            )
        )
    finally:
        cursor.close()
    log.info("published %d shard(s) of %s for %s", shards, table, day)

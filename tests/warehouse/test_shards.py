"""Sharded partition writes: shards stage out of sight, publishing attaches them without copying rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg2.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.profiles.outputs import embedding_column_type, format_embeddings
from pipelines.warehouse.partitions import (
    ShardError,
    begin_shards,
    copy_frames,
    partition_name,
    publish_shards,
    replace_partition,
    shard_members,
    write_shard,
)

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 14)
USERS = np.arange(1, 41, dtype=np.int64)


def _recs(users: np.ndarray, version: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, 2),
            "rank": np.tile([1, 2], len(users)),
            "item_id": np.tile([10, 11], len(users)),
            "score": np.tile([0.5, 0.25], len(users)),
            "source": "model",
            "model_version": version,
        }
    )


def _rows(engine: Engine, table: str = "recommendations") -> list[tuple]:
    with engine.connect() as conn:
        # Every column, model_version last (the tests compare rows without it and the versions alone).
        columns = conn.execute(
            sa.text(
                """SELECT string_agg(quote_ident(column_name), ', '
                                     ORDER BY column_name = 'model_version', ordinal_position)
                   FROM information_schema.columns WHERE table_name = :t"""
            ),
            {"t": table},
        ).scalar_one()
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT {columns} FROM {table} ORDER BY 1, 2, 3"))]


def _leaf_oids(engine: Engine, table: str) -> set[int]:
    with engine.connect() as conn:
        query = "SELECT relid::oid FROM pg_partition_tree(to_regclass(:t)) WHERE isleaf"
        return {r[0] for r in conn.execute(sa.text(query), {"t": table})}


def _write_all(engine: Engine, shards: int, version: str, skip: int | None = None) -> None:
    begin_shards(engine, "recommendations", DAY)
    for shard in range(shards):
        if shard != skip:
            members = USERS[shard_members(engine, "recommendations", DAY, shards, shard, USERS)]
            write_shard(engine, "recommendations", DAY, shard, shards, _recs(members, version))


def test_shards_publish_the_same_rows_as_one_write_and_only_once_all_are_staged(engine: Engine) -> None:
    replace_partition(engine, "recommendations", DAY, _recs(USERS, "v1"))
    single = _rows(engine)
    _write_all(engine, 4, "v2", skip=2)
    with engine.begin() as conn, pytest.raises(ShardError, match=r"shard\(s\) \[2\] of 4"):
        publish_shards(conn, "recommendations", DAY, 4)
    assert _rows(engine) == single  # readers still see the previous partition
    members = USERS[shard_members(engine, "recommendations", DAY, 4, 2, USERS)]
    write_shard(engine, "recommendations", DAY, 2, 4, _recs(members, "v1"))
    write_shard(engine, "recommendations", DAY, 2, 4, _recs(members, "v1"))  # a retry replaces its attempt
    staged = _leaf_oids(engine, "recommendations_p20260314_staged")
    with engine.begin() as conn:
        publish_shards(conn, "recommendations", DAY, 4)
    published = _rows(engine)
    assert [r[:5] for r in published] == [r[:5] for r in single]
    assert _leaf_oids(engine, partition_name("recommendations", DAY)) == staged  # attached, not copied
    assert {r[-1] for r in published} == {"v1", "v2"}
    _write_all(engine, 1, "v1")
    with engine.begin() as conn:
        publish_shards(conn, "recommendations", DAY, 1)
    assert _rows(engine) == single  # one shard: exactly the rows of one write


def test_each_user_lands_in_exactly_one_shard(engine: Engine) -> None:
    begin_shards(engine, "recommendations", DAY)
    masks = [shard_members(engine, "recommendations", DAY, 3, s, USERS) for s in range(3)]
    assert (np.sum(masks, axis=0) == 1).all() and all(m.any() for m in masks)


def test_a_shard_refuses_rows_of_another_shard_and_leaves_nothing(engine: Engine) -> None:
    begin_shards(engine, "recommendations", DAY)
    with pytest.raises(psycopg2.errors.CheckViolation, match="partition constraint"):
        write_shard(engine, "recommendations", DAY, 0, 2, _recs(USERS, "v1"))
    assert _leaf_oids(engine, "recommendations_p20260314_staged") == set()


def test_a_shard_without_its_staging_table_is_refused(engine: Engine) -> None:
    with pytest.raises(ShardError, match="no staging table"):
        write_shard(engine, "recommendations", DAY, 0, 1, _recs(USERS, "v1"))


def test_foreign_keys_carry_over_so_profiles_shard_too(engine: Engine) -> None:
    users = pd.DataFrame({"user_id": USERS, "signup_date": DAY, "age_group": None, "region": "north"})
    with engine.begin() as conn:
        copy_frames(conn, "users", users)
    begin_shards(engine, "user_profiles", DAY)
    frame = pd.DataFrame(
        {
            "user_id": [999],
            "embedding": [format_embeddings(np.ones((1, 2)), embedding_column_type(engine))[0]],
            "segment_id": 0,
            "top_categories": "[]",
            "model_version": "v",
        }
    )
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        write_shard(engine, "user_profiles", DAY, 0, 1, frame)
    write_shard(engine, "user_profiles", DAY, 0, 1, frame.assign(user_id=7))
    with engine.begin() as conn:
        publish_shards(conn, "user_profiles", DAY, 1)
    assert [r[1] for r in _rows(engine, "user_profiles")] == [7]

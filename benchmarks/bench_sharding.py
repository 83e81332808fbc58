"""Sharding overhead: top-20 for 1,000,000 users scored and written as 4 shards one after another vs 1 shard.

The same store, model and code path as bench_recs_inference.py (generated events, an untrained SASRec of the
production shape), but through the recommendation recipe's shard hooks on a scratch embedded PostgreSQL
holding the store's users and items: `score_shard` for each shard (the audience query, the shard's users
by PostgreSQL's hash of user id, their sequences, scoring, COPY into the shard's staging table and its
attach), then `publish_shards` (the staged table becomes the date's partition). Both configurations run in
this one process, one after the other, autovacuum off in the scratch database (each run's VACUUM (ANALYZE)
is timed apart, so one run's vacuum does not land in the next run's shards); per shard: users/s, rows/s
and the process's peak RSS while it ran. The publish step is also timed on a 4,000-user date: attaching
must not grow with the rows.

    .venv/bin/python benchmarks/bench_sharding.py --write-docs
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (a shared 2-core machine); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
import torch

from bench_recs_inference import store_events
from common import free_port, machine, replace_section
from pipelines.compute import select_device
from pipelines.modeltask import Checkpoint, Context, Served, Shard
from pipelines.recs.config import RecsConfig
from pipelines.recs.model import SASRec, SASRecConfig
from pipelines.recs.sequences import ItemVocab
from pipelines.recs.task import RecsData, RecsModel, RecsRecipe
from pipelines.registry import ModelRun
from pipelines.settings import Settings
from pipelines.sources.config import StoreConfig
from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.migrations import apply_migrations
from pipelines.warehouse.partitions import begin_shards, copy_frames, publish_shards, write_shard

log = logging.getLogger("bench_sharding")
TITLE = "Sharded scoring and writing: 4 shards vs 1, 1M users (bench_sharding.py)"


class PeakRss:
    """The process's peak resident memory while a block runs (sampled from /proc every 0.1 s)."""

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def set_hash(engine: sa.Engine, day: dt.date) -> tuple[int, int]:
    """Rows and an order-free hash of the date's rows (each row is unique by user and rank)."""
    with engine.connect() as conn:
        query = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0) % 1000000007), 0) FROM recommendations t"
        rows, digest = conn.execute(sa.text(query + " WHERE as_of_date = :d"), {"d": day}).one()
    return int(rows), int(digest)


def sharded_run(recipe: RecsRecipe, data: RecsData, served: Served, ctx: Context, shards: int) -> dict:
    begin_shards(ctx.engine, "recommendations", ctx.as_of)
    per_shard = []
    for index in range(shards):
        tick = time.perf_counter()
        with PeakRss() as rss:
            summary = recipe.score_shard(data, served, ctx, Shard(index, shards))
        seconds = time.perf_counter() - tick
        per_shard.append({**summary, "seconds": seconds, "peak_rss_mib": rss.peak})
        log.info("shard %d/%d: %d users, %d rows in %.1f s", index, shards, summary["users"],
                 summary["rows_written"], seconds)  # fmt: skip
    tick = time.perf_counter()
    with ctx.engine.begin() as conn:
        publish_shards(conn, "recommendations", ctx.as_of, shards)
    publish_s = time.perf_counter() - tick
    total = sum(s["seconds"] for s in per_shard) + publish_s
    partition = f"recommendations_p{ctx.as_of:%Y%m%d}"
    tick = time.perf_counter()
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'VACUUM (ANALYZE) "{partition}"'))
    vacuum_s = time.perf_counter() - tick
    with ctx.engine.connect() as conn:
        size = conn.execute(
            sa.text("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(to_regclass(:p)) WHERE isleaf"),
            {"p": partition},
        ).scalar()
    return {
        "shards": per_shard,
        "publish_s": publish_s,
        "total_s": total,
        "vacuum_s": vacuum_s,
        "hash": set_hash(ctx.engine, ctx.as_of),
        "bytes": int(size),
    }


def small_publish(engine: sa.Engine, day: dt.date, users: int, shards: int) -> float:
    """The publish step alone on a date of `users` x 20 rows written in `shards` shards."""
    begin_shards(engine, "recommendations", day)
    ids = np.arange(1, users + 1, dtype=np.int64)
    with engine.connect() as conn:
        owner = conn.execute(
            sa.text(
                "SELECT u, i FROM unnest(CAST(:ids AS bigint[])) AS u, generate_series(0, :n - 1) AS i"
                " WHERE satisfies_hash_partition(CAST(:t AS regclass)::oid, :n, i, u)"
            ),
            {"ids": ids.tolist(), "n": shards, "t": f"recommendations_p{day:%Y%m%d}_staged"},
        ).all()
    shard_of = dict(owner)
    for index in range(shards):
        mine = np.array([u for u in ids if shard_of[int(u)] == index], dtype=np.int64)
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(mine, 20),
                "rank": np.tile(np.arange(1, 21), len(mine)),
                "item_id": 1,
                "score": 0.0,
                "source": "model",
                "model_version": "bench",
            }
        )
        write_shard(engine, "recommendations", day, index, shards, frame)
    tick = time.perf_counter()
    with engine.begin() as conn:
        publish_shards(conn, "recommendations", day, shards)
    return time.perf_counter() - tick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = RecsConfig()
    device = select_device(args.device)
    store = StoreConfig(users=args.users, items=args.items, days=args.days)
    as_of = store.end_date
    events = store_events(store, set(config.event_weights) | set(config.exclude_event_types))
    vocab = ItemVocab(np.zeros(0, np.int64)).extended(events["item_id"].to_numpy(np.int64))
    torch.manual_seed(0)
    model = SASRec(SASRecConfig.from_task_config(config, vocab.size))
    run = ModelRun("sasrec", "bench", as_of, "promoted", {}, {}, {}, None, None)
    served = Served(run, RecsModel(model, vocab), Checkpoint({}, {}, {}, as_of.isoformat(), {}))
    recipe = RecsRecipe(config)

    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedPostgres(Path(folder) / "pgdata", port=free_port())
        engine = sa.create_engine(server.start(), connect_args={"options": "-c timezone=UTC"})
        try:
            apply_migrations(engine)
            # Autovacuum of one run's rows would land inside the next timed shard: each run vacuums its own, timed.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ALTER SYSTEM SET autovacuum = off"))
                conn.execute(sa.text("SELECT pg_reload_conf()"))
            users = pd.DataFrame({"user_id": np.arange(1, args.users + 1), "signup_date": store.start_date})
            items = pd.DataFrame({"item_id": vocab.item_ids, "category": "c", "price": 1.0, "title": "t"})
            with engine.begin() as conn:
                copy_frames(conn, "users", users.assign(age_group=None, region="north"))
                copy_frames(conn, "items", items)
            data = RecsData(events, vocab.item_ids, {"events": len(events), "events_on_day": 0,
                                                     "unknown_item_events": 0})  # fmt: skip
            ctx = Context(engine, as_of, Settings(state_dir=Path(folder)), device, 0, False)
            one = sharded_run(recipe, data, served, ctx, 1)
            many = sharded_run(recipe, data, served, ctx, args.shards)
            small = {n: small_publish(engine, as_of - dt.timedelta(days=1), 4000, n) for n in (1, args.shards)}
        finally:
            engine.dispose()
            server.stop()
    ratio = many["total_s"] / one["total_s"]
    figures = {"one": one, "many": many, "ratio": ratio, "small_publish_s": small, "load": os.getloadavg()[1]}
    log.info("%s", figures)
    if args.write_docs:
        write_docs(args, one, many, ratio, small, torch.get_num_threads(), device)
    return 0 if one["hash"] == many["hash"] else 1


def write_docs(args, one: dict, many: dict, ratio: float, small: dict, threads: int, device) -> None:
    rows = [
        "| run | shard | users | rows | seconds | users/s | rows/s | peak RSS (process) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, result in (("1 shard", one), (f"{args.shards} shards", many)):
        for i, s in enumerate(result["shards"]):
            rows.append(
                f"| {label} | {i} | {s['users']:,} | {s['rows_written']:,} | {s['seconds']:.1f} | "
                f"{s['users'] / s['seconds']:,.0f} | {s['rows_written'] / s['seconds']:,.0f} | "
                f"{s['peak_rss_mib'] / 1024:.2f} GiB |"
            )
    same = "identical" if one["hash"] == many["hash"] else "**different**"
    body = "\n".join(
        [
            "What: the recommendation recipe's shard hooks for 1,000,000 users (the store, model and batches of "
            "`bench_recs_inference.py`): each shard's audience query, its users by PostgreSQL's hash of user "
            "id, their sequences, scoring, COPY into its staging table and the attach; then the publish step. "
            f"1 shard and {args.shards} shards one after another, in one process on one scratch database with "
            "autovacuum off (a run's autovacuum would otherwise land inside the next run's timed shards); each run "
            "vacuums and analyzes its own rows after publishing, timed apart.",
            "",
            f"Machine: {machine()}; device `{device}`, {threads} torch threads, OMP_WAIT_POLICY=PASSIVE; embedded "
            "PostgreSQL 18. Command: `.venv/bin/python benchmarks/bench_sharding.py "
            f"--users {args.users} --items {args.items} --days {args.days} --shards {args.shards} --write-docs`",
            "",
            "| what | 1 shard | " + f"{args.shards} shards |",
            "| --- | --- | --- |",
            f"| scoring + writing, wall (shards + publish) | {one['total_s']:.0f} s | {many['total_s']:.0f} s "
            f"(**{ratio:.2f}x**, target <= 1.15x) |",
            f"| with VACUUM (ANALYZE) of the date's rows after publishing | {one['total_s'] + one['vacuum_s']:.0f} s | "
            f"{many['total_s'] + many['vacuum_s']:.0f} s "
            f"({(many['total_s'] + many['vacuum_s']) / (one['total_s'] + one['vacuum_s']):.2f}x) |",
            f"| publish step, {one['hash'][0]:,} rows (the second also drops the first's partition) | "
            f"{one['publish_s'] * 1000:.0f} ms | {many['publish_s'] * 1000:.0f} ms |",
            f"| publish step, 80,000 rows | {small[1] * 1000:.0f} ms | {small[args.shards] * 1000:.0f} ms |",
            f"| rows (order-free hash of every row) | {one['hash'][0]:,} | {many['hash'][0]:,}, {same} |",
            f"| the date's partition on disk (table + primary key) | {one['bytes'] / 2**20:,.0f} MiB | "
            f"{many['bytes'] / 2**20:,.0f} MiB ({many['bytes'] / args.users:,.0f} bytes per user) |",
            "",
            *rows,
            "",
            f"Load average (5 min) at the end: {os.getloadavg()[1]:.1f}.",
        ]
    )
    replace_section(TITLE, body)


if __name__ == "__main__":
    raise SystemExit(main())

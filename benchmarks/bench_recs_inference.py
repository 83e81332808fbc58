"""Top-20 for 1,000,000 users from the synthetic store, scored and written to PostgreSQL with COPY.

The store's events come from the synthetic generator (`pipelines.sources`, in memory: loading 20M
events into PostgreSQL first would take longer than what is measured here); its cart and purchase
events become the users' sequences exactly as in `refresh_recommendations`. The model is an untrained
SASRec of the production shape (scores do not change the cost). What is timed is what the task does
after training: `model_topk` / `popularity_topk` batches streamed into `replace_partition` (one
transaction, COPY) on a scratch embedded PostgreSQL, once without and once with each row's reason (the
leave-one-out driver, pipelines.recs.explain), in that order. Targets: under 10 minutes, peak RSS under 4 GB.

    .venv/bin/python benchmarks/bench_recs_inference.py --write-docs
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (a shared 2-core machine); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import logging
import resource
import tempfile
import textwrap
import time
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
import torch

from common import free_port, replace_section
from pipelines.compute import select_device
from pipelines.recs import explain
from pipelines.recs.config import RecsConfig
from pipelines.recs.infer import aligned, model_topk, popularity_topk, ranking
from pipelines.recs.model import SASRec, SASRecConfig
from pipelines.recs.sequences import ItemVocab, from_events
from pipelines.sources.config import StoreConfig
from pipelines.sources.generator import generate_events
from pipelines.sources.world import build_world
from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.migrations import apply_migrations
from pipelines.warehouse.partitions import replace_partition
from pipelines.warehouse.prefetch import prefetch

log = logging.getLogger("bench_recs_inference")
TITLE = "Transformer recommendations: inference + write, 1M users (bench_recs_inference.py)"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_events(config: StoreConfig, types: set[str]) -> pd.DataFrame:
    """The generated store's events of `types`, in time order (frames filtered as they stream)."""
    keep = []
    for frame in generate_events(build_world(config)):
        keep.append(frame.loc[frame["event_type"].isin(types), ["user_id", "item_id", "event_type", "event_ts"]])
    return pd.concat(keep, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = RecsConfig()
    device = select_device(args.device)
    store = StoreConfig(users=args.users, items=args.items, days=args.days)
    as_of = store.end_date

    tick = time.perf_counter()
    events = store_events(store, set(config.event_weights) | set(config.exclude_event_types))
    generate_s = time.perf_counter() - tick
    log.info("generated %d cart/purchase events in %.1f s", len(events), generate_s)

    tick = time.perf_counter()
    vocab = ItemVocab(np.zeros(0, np.int64)).extended(events["item_id"].to_numpy(np.int64))
    history = from_events(events, vocab, config.event_weights)
    exclude = aligned(from_events(events, vocab, {t: 1.0 for t in config.exclude_event_types}), history.user_ids)
    audience = np.arange(1, args.users + 1, dtype=np.int64)
    others = np.setdiff1d(audience, history.user_ids)
    weights = events["event_type"].map(config.event_weights)
    popular = ranking(weights.groupby(events["item_id"]).sum(), config.top_k)
    prepare_s = time.perf_counter() - tick
    torch.manual_seed(0)
    model = SASRec(SASRecConfig.from_task_config(config, vocab.size)).to(device)
    del events

    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedPostgres(Path(folder) / "pgdata", port=free_port())
        engine = sa.create_engine(server.start(), connect_args={"options": "-c timezone=UTC"})
        try:
            apply_migrations(engine)
            seconds = {}
            for explained in (False, True):
                tick = time.perf_counter()
                frames = chain(
                    model_topk(
                        model,
                        vocab,
                        history,
                        exclude,
                        top_k=config.top_k,
                        batch_users=config.infer_batch_users,
                        device=device,
                        explained=explained,
                    ),
                    popularity_topk(
                        others, np.full(len(others), -1), {}, popular, batch_users=config.infer_batch_users
                    ),
                )
                tagged = (f.assign(model_version="bench") for f in prefetch(frames, depth=2))
                rows = replace_partition(engine, "recommendations", as_of, tagged)
                seconds[explained] = time.perf_counter() - tick
                log.info("%s reasons: %d rows in %.1f s", "with" if explained else "without", rows, seconds[explained])
            total_s, plain_s = seconds[True], seconds[False]
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.text("SELECT count(*), count(reason_code), count(reason_item_id) FROM recommendations")
                ).one()
        finally:
            engine.dispose()
            server.stop()
    assert tuple(stored) == (rows, rows, rows - len(others) * config.top_k)
    figures = {
        "users": args.users,
        "model_users": len(history),
        "items": vocab.size,
        "rows": rows,
        "seconds": total_s,
        "seconds_without_reasons": plain_s,
        "users_per_s": args.users / total_s,
        "rows_per_s": rows / total_s,
        "peak_rss_mib": rss_mib(),
        "load_average": os.getloadavg()[1],  # 5 minutes: how shared the 2 cores were while timed
    }
    log.info("%s", figures)
    if args.write_docs:
        what = (
            f"What: `refresh_recommendations` after training for {args.users:,} users: scoring in batches of "
            f"{config.infer_batch_users} users streamed into `replace_partition` (one transaction, binary COPY), "
            f"first without and then with each row's reason (latest {explain.RECENT} history items, ADR 0013). "
            f"Store: the synthetic generator ({args.users:,} users, {args.items:,} items, {args.days} days, "
            f"generated in {generate_s:.0f} s, not timed): {len(history):,} users with a history over "
            f"{vocab.size:,} items, {len(others):,} get global popularity. Model: SASRec of the production shape, "
            "untrained weights (the cost does not depend on them)."
        )
        run = (
            f"Run {dt.date.today()} on 2 vCPU, 24 GiB, no GPU (device `{device}`, {torch.get_num_threads()} torch "
            "threads, OMP_WAIT_POLICY=PASSIVE, set by the script); embedded PostgreSQL 18, fresh database; load "
            f"average {figures['load_average']:.1f} over the 5 minutes before the end (above 2: other work shared "
            "the cores). Command: `.venv/bin/python benchmarks/bench_recs_inference.py "
            f"--users {args.users} --items {args.items} --days {args.days} --write-docs`"
        )
        table = [
            "| what | figure |",
            "| --- | --- |",
            f"| users scored / rows written (top-{config.top_k}) | {args.users:,} / {rows:,} |",
            f"| inference + write, wall, with reasons | **{total_s:.0f} s** (target < 600 s) |",
            f"| the same without reasons (same run, before it) | {plain_s:.0f} s |",
            f"| cost of the reasons | **{total_s - plain_s:.0f} s: "
            f"{1000 * (total_s - plain_s) / len(history):.3f} s per 1k model users** |",
            f"| users/s, with reasons | {figures['users_per_s']:,.0f} |",
            f"| rows/s written, with reasons | {figures['rows_per_s']:,.0f} (baseline: `psql \\copy` of 7-column "
            "rows here: ~290,000/s) |",
            f"| peak RSS (generation included) | **{figures['peak_rss_mib'] / 1024:.2f} GiB** (target < 4 GB) |",
            f"| building the sequences from events (not timed above) | {prepare_s:.1f} s |",
        ]
        body = "\n\n".join([textwrap.fill(what, 108), textwrap.fill(run, 108), "\n".join(table)])
        replace_section(TITLE, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

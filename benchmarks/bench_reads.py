"""Benchmark: what each model task reads for one business date, as the event history grows.

The recommender reads every event up to its date, so its read grows with the history. The profile VAE
reads its (user, item) state (`profiles.state`): built once from the `history_days` window, then moved a
day at a time. Protocol: a synthetic store of about --events events (`load_synthetic_store`: generate,
binary COPY, events indexes, ANALYZE) in a scratch embedded PostgreSQL; then each read runs in a fresh
interpreter, so its peak RSS is the read's own. For the last business date D and the middle one:
- profiles-events (the baseline, the read before the state): the window's events as of D read as rows
  and weighted in memory (`matrix.event_weights`);
- profiles-built: `ProfileRecipe.read` of D-1 with no state (it builds it) plus the day before's pairs
  (what the publish step reads for drift);
- profiles-daily: the same for D, the state moved from D-1: the daily cost;
- recs: `RecsRecipe.read`; creatives: `CreativesRecipe.read` plus `load_item_images`.
A training epoch at the same scale, from this file's other sections, is the other baseline.

    .venv/bin/python benchmarks/bench_reads.py --write-docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_generate_load import add_store_arguments, sized_config
from common import free_port, hardware, replace_section, wrap_prose
from pipelines.progress import format_duration
from pipelines.settings import Settings
from pipelines.sources import load_synthetic_store
from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.engine import get_engine
from pipelines.warehouse.migrations import apply_migrations

log = logging.getLogger("bench_reads")
TITLE = "Model task reads as the history grows (bench_reads.py)"
READS = ("profiles-events", "profiles-built", "profiles-daily", "recs", "creatives")
PROGRESS_S = 20.0

# Training epochs at this scale, from this file's other sections (same machine type, CPU, 2 threads):
# the profile VAE at 1,000,000 users (38.8 s an epoch), and SASRec on Amazon Beauty (24.7 s an epoch
# for 22,363 users; one epoch is one pass over the users' sequences, so it scales with the users).
PROFILE_EPOCH_S = 38.8
RECS_EPOCH_S_PER_USER = 24.7 / 22_363


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def read_once(name: str, url: str, as_of: dt.date) -> dict[str, float | int | str | None]:
    """One model task's read for `as_of`, in this process: seconds, rows, peak RSS before and after."""
    import torch

    from pipelines.creatives.config import CreativesConfig
    from pipelines.creatives.data import load_item_images
    from pipelines.creatives.task import CreativesRecipe
    from pipelines.modeltask import Context
    from pipelines.profiles import ProfileConfig
    from pipelines.profiles.task import ProfileRecipe
    from pipelines.recs import RecsConfig
    from pipelines.recs.task import RecsRecipe

    engine = get_engine(url)
    ctx = Context(engine, as_of, Settings.from_env(), torch.device("cpu"), seed=0, force_promote=False)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")  # the pool's first connection is not the read's cost
    before = _peak_rss_mib()
    started = time.monotonic()
    if name == "profiles-events":
        from pipelines.profiles.matrix import event_weights, window_start
        from pipelines.warehouse.reads import events_as_of, read_frame

        config = ProfileConfig()
        events = events_as_of(engine, as_of, since=window_start(as_of, config),
                              event_types=[t for t, w in config.event_weights.items() if w > 0],
                              columns=("user_id", "item_id", "event_type", "event_ts"))  # fmt: skip
        users = read_frame(engine, "SELECT user_id FROM users")["user_id"]
        data = event_weights(events.loc[events["user_id"].isin(users)], as_of, config)
    elif name.startswith("profiles"):
        with engine.begin() as conn:  # profiles-built starts from no state
            if name == "profiles-built":
                conn.exec_driver_sql("UPDATE profile_state_meta SET as_of = NULL")
        before = _peak_rss_mib()
        started = time.monotonic()
        read = ProfileRecipe(ProfileConfig()).read(ctx)
        data = (read.pairs, read.before())
    elif name == "recs":
        data = RecsRecipe(RecsConfig()).read(ctx)
    elif name == "creatives":
        config = CreativesConfig()
        data = (CreativesRecipe(config).read(ctx), load_item_images(engine, size=config.image_size,
                                                                     channels=config.image_channels))  # fmt: skip
    else:
        raise ValueError(f"unknown read {name!r}; one of {', '.join(READS)}")
    seconds = time.monotonic() - started
    peak = _peak_rss_mib()
    # What a per-user state as of the date would hold instead of the events (not timed): one decayed weight
    # per user x item for the profiles, each user's last max_len items for the recommender.
    compact = users = None
    if name == "profiles-events":
        rows, compact = len(events), len(data)
    elif name.startswith("profiles"):
        rows = len(data[0]) + len(data[1])
    elif name == "recs":
        per_user = data.events.groupby("user_id").size()
        rows, users, compact = len(data.events), len(per_user), int(per_user.clip(upper=RecsConfig().max_len).sum())
    else:
        rows = len(data[0]) + len(data[1])
    return {
        "read": name, "as_of": as_of.isoformat(), "rows": rows, "seconds": seconds,
        "rss_before_mib": before, "peak_rss_mib": peak, "compact_rows": compact, "users": users,
    }  # fmt: skip


def _current_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(name: str, url: str, as_of: dt.date) -> dict[str, float | int | str]:
    """`read_once` in a fresh interpreter (its RSS is the read's own), with a progress line every 20 s."""
    command = [sys.executable, __file__, "--read", name, "--database-url", url, "--as-of", as_of.isoformat()]
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        while True:
            try:
                out, _ = child.communicate(timeout=PROGRESS_S)
                break
            except subprocess.TimeoutExpired:
                rss = _current_rss_mib(child.pid)
                log.info("reading %s as of %s: %s so far, RSS %s MiB", name, as_of,
                         format_duration(time.monotonic() - started), f"{rss:,.0f}")  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"the {name} read as of {as_of} failed (exit {child.returncode}); see its log above")
    result = json.loads(out.strip().splitlines()[-1])
    log.info("%s as of %s: %s rows in %.1f s, peak RSS %s MiB", name, as_of, f"{result['rows']:,}",
             result["seconds"], f"{result['peak_rss_mib']:,.0f}")  # fmt: skip
    return result


def _events_up_to(url: str, as_of: dt.date) -> int:
    from pipelines.warehouse.reads import day_bounds

    with get_engine(url).connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM events WHERE event_ts < %s", (day_bounds(as_of)[1],)).scalar()


def report(args: argparse.Namespace, results: list[dict], events: dict[str, int], load_s: float, load: float) -> str:
    rows = [
        "What: each model task's as-of read in a fresh interpreter (seconds, peak RSS; the interpreter with its "
        "imports is given apart), for the last business date and the middle one. profiles-events, the baseline: "
        "the profile window's events as rows, weighted in memory (the read before the state, ADR 0017). "
        "profiles-built: `ProfileRecipe.read` of the day before with no state, plus the day before's pairs "
        "(drift); profiles-daily: the same for the date, the state moved one day. recs: `RecsRecipe.read`; "
        "creatives: its `read` plus `load_item_images`. Epoch: from the sections above, extrapolated.",
        "",
        f"Run {dt.date.today()} on {hardware()}; embedded PostgreSQL 18 (shared_buffers 256MB), fresh database. "
        f"Store: {args.users:,} users, {args.items:,} items, {args.days} days up to {args.end_date}, "
        f"loaded in {load_s:.0f} s. One-minute load average before the reads: {load:.1f}"
        f"{' (cores shared with other work)' if load > 2.5 else ''}.",
        f"Command: `.venv/bin/python benchmarks/bench_reads.py --users {args.users} --items {args.items} "
        f"--days {args.days} --events {args.events} --write-docs`",
        "",
        "| read | as of (events up to it) | rows read | seconds | rows/s | RSS before the read | peak RSS | "
        "a training epoch at this scale | pairs of the profile window; recs: rows of a last-50 state |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if r["read"].startswith("profiles"):
            epoch = f"{PROFILE_EPOCH_S:.1f} s (VAE, 1M users x 1,000 items)"
        elif r["read"] == "recs":
            epoch = f"~{RECS_EPOCH_S_PER_USER * r['users']:,.0f} s ({r['users']:,} users, scaled from Beauty)"
        else:
            epoch = ""
        rows.append(
            f"| {r['read']} | {r['as_of']} ({events[r['as_of']]:,}) | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r['rows'] / max(r['seconds'], 1e-9):,.0f} | {r['rss_before_mib']:,.0f} MiB | "
            f"{r['peak_rss_mib']:,.0f} MiB | {epoch} | {_count(r['compact_rows'])} |"
        )
    return "\n".join(rows) + "\n"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("--reads", nargs="+", choices=READS, default=list(READS), help="which reads (default: all)")
    parser.add_argument("--write-docs", action="store_true", help="record the figures in docs/benchmarks.md")
    parser.add_argument("--read", choices=READS, help=argparse.SUPPRESS)  # one read, in the child process
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.read:
        print(json.dumps(read_once(args.read, args.database_url, args.as_of)))
        return

    config = sized_config(args.users, args.items, args.days, args.events, args.end_date)
    images = args.data_dir / "fashion-mnist"
    if not (images / "train-images-idx3-ubyte.gz").exists():
        parser.error(f"no Fashion-MNIST under {images}: the creatives read needs item pictures (see --data-dir)")
    dates = [args.end_date - dt.timedelta(days=args.days // 2), args.end_date]
    # profiles-built reads the day before each date; profiles-daily then moves that state one day.
    order = [(name, day - dt.timedelta(days=1) if name == "profiles-built" else day) for day in dates
             for name in READS if name in args.reads]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        os.chmod(tmp, 0o777)  # the embedded server (an unprivileged user under root) writes here
        server = EmbeddedPostgres(Path(tmp) / "pgdata", free_port())
        url = server.start()
        try:
            engine = get_engine(url)
            apply_migrations(engine)
            summary = load_synthetic_store(engine, config, images)
            engine.dispose()
            events = {day.isoformat(): _events_up_to(url, day) for _, day in order}
            load = os.getloadavg()[0]
            results = [measure(name, url, day) for name, day in order]
        finally:
            server.stop()
    text = report(args, results, events, summary.seconds, load)
    print(text)
    if args.write_docs:
        replace_section(TITLE, wrap_prose(text))


if __name__ == "__main__":
    main()

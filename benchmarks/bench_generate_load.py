"""Benchmark: generate and load a synthetic store of 1,000,000 users / ~20,000,000 events, against psql \\copy.

Protocol: a fresh database (an embedded PostgreSQL 18 of its own on a free port in a temporary folder,
or --database-url), migrated; `load_synthetic_store` replaces the source tables (one transaction,
TRUNCATE + COPY in chunks, item pictures from Fashion-MNIST under --data-dir). Then the same event rows
are exported with psql \\copy to a CSV file, the events table is emptied, and psql \\copy loads the file
back into the same table (same indexes); its rows/s is the practical ceiling our load is compared with.
As our load builds the events indexes after the COPY, psql \\copy is also timed that way (indexes
dropped, \\copy, indexes built), the like-for-like ceiling.
Also measured: generation alone (no database), and this process's peak RSS.

Run it alone (timed runs never overlap on the shared 2 cores):
    .venv/bin/python benchmarks/bench_generate_load.py --write-docs
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common import hardware, write_section
from pipelines.settings import Settings
from pipelines.sources import StoreConfig, load_synthetic_store
from pipelines.warehouse.embedded import EmbeddedPostgres, _bin_dir
from pipelines.warehouse.engine import get_engine, normalize_url
from pipelines.warehouse.migrations import apply_migrations

log = logging.getLogger("bench_generate_load")


SECTION = "## Synthetic store: generate and load (sources)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _psql() -> str:
    bundled = _bin_dir() / "psql"
    return str(bundled) if bundled.exists() else (shutil.which("psql") or "psql")


def _libpq_url(url: str) -> str:
    return normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_psql(url: str, command: str) -> None:
    subprocess.run([_psql(), _libpq_url(url), "-v", "ON_ERROR_STOP=1", "-qc", command], check=True)


def sized_config(users: int, items: int, days: int, events: int, end_date: dt.date) -> StoreConfig:
    """A config of `users` users whose session rate gives about `events` events."""
    base = StoreConfig(users=users, items=items, days=days, end_date=end_date, block_users=200_000)
    # Campaign lift and discount-driven spikes add about 7% over the plain estimate.
    rate = base.sessions_per_user_day * events / base.expected_events() / 1.07
    return dataclasses.replace(base, sessions_per_user_day=rate)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic store's size options (the benchmarks that load one share them)."""
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--events", type=int, default=20_000_000, help="target number of events (approximate)")
    parser.add_argument("--end-date", type=dt.date.fromisoformat, default=dt.date(2026, 6, 30))
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().shared_data_dir)


def time_generation(config: StoreConfig) -> tuple[int, float]:
    from pipelines.sources.generator import generate_events
    from pipelines.sources.world import build_world

    started = time.monotonic()
    rows = sum(len(frame) for frame in generate_events(build_world(config)))
    return rows, time.monotonic() - started


def time_psql_copy(url: str, workdir: Path) -> tuple[int, float, float]:
    """Export the events with psql \\copy; then time psql \\copy loading them back into the emptied table,
    first with its indexes in place, then with them dropped and built afterwards (as our load does).

    Returns (rows, seconds with indexes, seconds with deferred index builds).
    """
    csv_path = workdir / "events.csv"
    _run_psql(url, f"\\copy events TO '{csv_path}' WITH (FORMAT csv)")
    engine = get_engine(url)
    with engine.connect() as conn:
        indexes = conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'").all()

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE events")
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")  # start from the same clean state as our load did

    empty()
    started = time.monotonic()
    _run_psql(url, f"\\copy events FROM '{csv_path}' WITH (FORMAT csv)")
    with_indexes = time.monotonic() - started
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    log.info("psql \\copy with indexes: %s rows in %.1f s", f"{rows:,}", with_indexes)

    empty()
    with engine.begin() as conn:
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    started = time.monotonic()
    _run_psql(url, f"\\copy events FROM '{csv_path}' WITH (FORMAT csv)")
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.exec_driver_sql(definition)
    deferred = time.monotonic() - started
    log.info("psql \\copy, then index builds: %.1f s", deferred)
    csv_path.unlink()
    return rows, with_indexes, deferred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument(
        "--database-url", help="a server to use instead of a fresh embedded one (its tables are replaced)"
    )
    parser.add_argument("--skip-generation-only", action="store_true")
    parser.add_argument("--write-docs", action="store_true", help="record the figures in docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    config = sized_config(args.users, args.items, args.days, args.events, args.end_date)
    images = args.data_dir / "fashion-mnist"
    images_dir = images if (images / "train-images-idx3-ubyte.gz").exists() else None

    generated = None
    if not args.skip_generation_only:
        generated = time_generation(config)
        log.info("generation only: %s events in %.1f s", f"{generated[0]:,}", generated[1])

    with tempfile.TemporaryDirectory(prefix="bench-generate-load-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o777)  # the embedded server (an unprivileged user under root) writes here
        server = None
        if args.database_url:
            url = args.database_url
        else:
            server = EmbeddedPostgres(workdir / "pgdata", _free_port())
            url = server.start()
        try:
            engine = get_engine(url)
            apply_migrations(engine)
            load_before = os.getloadavg()[0]
            summary = load_synthetic_store(engine, config, images_dir)
            peak_rss = _peak_rss_mib()
            psql_rows, psql_seconds, psql_deferred_seconds = time_psql_copy(url, workdir)
            load_after = os.getloadavg()[0]
        finally:
            if server is not None:
                server.stop()

    events = summary.rows["events"]
    ours = events / summary.seconds
    ceiling = psql_rows / psql_seconds
    deferred = psql_rows / psql_deferred_seconds
    lines = [
        SECTION,
        "",
        f"Measured {dt.date.today().isoformat()} on {hardware()}; embedded PostgreSQL 18 "
        "(shared_buffers 256MB, max_wal_size 4GB), fresh database, events with its 4 indexes. "
        f"The cores were shared with other work: load average {load_before:.1f} before our load, "
        f"{load_after:.1f} after the psql runs, so absolute rates are low; the ratios are what the run shows.",
        f"Command: `.venv/bin/python benchmarks/bench_generate_load.py "
        f"--users {args.users} --items {args.items} --days {args.days} --events {args.events} --write-docs`",
        "",
        f"Store: {config.users:,} users, {config.items:,} items, {config.days} days up to {config.end_date}, "
        f"seed {config.seed}, {config.campaigns} campaigns, item pictures: {'yes' if images_dir else 'no'}.",
        "",
        "| what | rows | seconds | rows/s |",
        "| --- | --- | --- | --- |",
    ]
    if generated is not None:
        lines.append(
            f"| generation only (no database) | {generated[0]:,} events | {generated[1]:.1f} | "
            f"{generated[0] / generated[1]:,.0f} |"
        )
    lines += [
        f"| `load_synthetic_store`: generate, binary COPY, build the events indexes, one transaction | "
        f"{summary.total_rows:,} ({events:,} events) | {summary.seconds:.1f} | "
        f"{summary.rows_per_s:,.0f} all, {ours:,.0f} events |",
        f"| psql `\\copy` (CSV) of the same event rows into the emptied events table, indexes in place | "
        f"{psql_rows:,} | {psql_seconds:.1f} | {ceiling:,.0f} |",
        f"| psql `\\copy` of the same rows with the indexes dropped, then built | {psql_rows:,} | "
        f"{psql_deferred_seconds:.1f} | {deferred:,.0f} |",
        "",
        f"Our load (events/s of the whole generate-and-load, users, items and pictures included) reaches "
        f"**{ours / ceiling:.0%}** of plain psql `\\copy` (target >= 70%) and **{ours / deferred:.0%}** of psql "
        f"`\\copy` with the same deferred index builds. Peak RSS of the generating process: "
        f"**{peak_rss:,.0f} MiB** (target < 2 GiB).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_section(text)


if __name__ == "__main__":
    main()

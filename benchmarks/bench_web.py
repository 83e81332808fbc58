"""Marketing page latency (the Airflow UI plugin's app) on a store with 1,000,000 users.

A scratch embedded PostgreSQL gets one fully populated business date (tests/web/sample.py: users,
profiles, segments, top-K recommendations per user, creatives, dq results, model runs); the app is served
by uvicorn on loopback and each page is requested N times in a row with httpx; p50/p95 go to
docs/benchmarks.md. Identity comes from a trusted header here: the figure is the page's own work
(queries + rendering), not Airflow's token check.

    .venv/bin/python benchmarks/bench_web.py [--users 1000000] [--requests 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import HTTPException, Request

from common import ROOT, free_port, machine, replace_section
from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.engine import database_url, ensure_database, get_engine
from pipelines.warehouse.migrations import apply_migrations
from pipelines.web import csrf
from pipelines.web.app import create_app

# The sample date is the web tests' fixture; a script's path holds only benchmarks/, so add the repository.
sys.path.insert(0, str(ROOT))
from tests.web.sample import BANNER_SIZES, CREATIVE_CATEGORIES, SampleSpec, write_sample  # noqa: E402

SECTION = "Marketing pages in the Airflow UI (bench_web.py)"


async def header_user(request: Request) -> str:
    user = request.headers.get("X-Bench-User")
    if not user:
        raise HTTPException(status_code=401)
    return user


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    spec = dataclasses.replace(
        SampleSpec(), users=args.users, items=args.items, segments=args.segments, top_k=args.top_k
    )
    with tempfile.TemporaryDirectory(prefix="bench-web-") as scratch:
        server = EmbeddedPostgres(Path(scratch) / "pgdata", free_port())
        url = server.start()
        try:
            ensure_database(url, "bench_web")
            engine = get_engine(database_url(url, "bench_web"))
            apply_migrations(engine)
            started = time.perf_counter()
            write_sample(engine, spec, Path(scratch) / "artifacts")
            load_s = time.perf_counter() - started
            rows = spec.users * spec.top_k
            print(
                f"loaded {spec.users:,} users, {rows:,} recommendations in {load_s:.0f} s ({rows / load_s:,.0f} rows/s)"
            )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
            results = _measure(engine, spec, Path(scratch) / "artifacts", args.requests)
        finally:
            server.stop()
    for page, times in results.items():
        print(f"{page}: p50 {1000 * statistics.median(times):.1f} ms, p95 {1000 * _percentile(times, 0.95):.1f} ms")
    if args.write_docs:
        table = "\n".join(
            f"| `{page}` | {1000 * statistics.median(t):.1f} | {1000 * _percentile(t, 0.95):.1f} "
            f"| {1000 * max(t):.1f} |"
            for page, t in results.items()
        )
        creatives = spec.segments * len(CREATIVE_CATEGORIES) * len(BANNER_SIZES)
        replace_section(
            SECTION,
            f"""Protocol: one business date with {spec.users:,} users (each with a profile and top-{spec.top_k}
recommendations: {spec.users * spec.top_k:,} rows), {spec.items:,} items, {spec.segments} segments,
{creatives} creatives, on embedded PostgreSQL 18 (ANALYZEd); the `pipelines.web` app served by
uvicorn on loopback, {args.requests} sequential requests per page with httpx after one warm-up request,
identity from a trusted header (Airflow's JWT check not included). Target: under 1 s.
Command: `.venv/bin/python benchmarks/bench_web.py --write-docs`.
Machine: {machine()}.

| page | p50 (ms) | p95 (ms) | max (ms) |
| --- | --- | --- | --- |
{table}""",
        )


def _measure(engine: object, spec: SampleSpec, artifacts: Path, requests: int) -> dict[str, list[float]]:
    app = create_app(
        lambda: engine,  # type: ignore[return-value,arg-type]
        current_user=header_user,
        csrf_key=csrf.derive_key("bench"),
        artifacts_dir=artifacts,
        run_date=lambda dag_id, run_id: spec.day,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    pages = {
        "/ (latest date)": "/",
        f"/dates/{spec.day}": f"/dates/{spec.day}",
        "/runs/{dag}/{run} (run tab)": "/runs/marketing_daily/scheduled",
        "/creatives/image (one PNG)": (
            f"/creatives/image?campaign_date={spec.day}&campaign_id={spec.campaign_id}&segment_id=1"
            "&category=shoes&rank=1&banner_size=300x250"
        ),
    }
    results: dict[str, list[float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Bench-User": "bench"}) as client:
            for name, path in pages.items():
                client.get(path).raise_for_status()  # warm-up: connection pool, plans, template compile
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append(time.perf_counter() - started)
                results[name] = times
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return results


if __name__ == "__main__":
    main()

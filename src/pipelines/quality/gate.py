"""The data-quality gate: check one business date's batches in PostgreSQL before any model sees them.

The batches: the day's events and, where the delivery loop runs, its impressions and outcomes (a day
without impressions passes their checks: a store may not run the loop).

Order matters for what a person finds after a failure: dq_results and Data Docs are written first, then a
critical failure raises `DataQualityError` naming the checks and showing bad rows. Warnings are recorded
and do not block. A date after the newest loaded batch is refused before any check, with that reason.

Samples quote users, so the results are written like a model task's outputs (`pipelines.privacy.models`):
an erasure that ran while the gate read the events stops the write (nothing written, a retry reads again),
and one that starts while the gate writes waits for it and then removes what it quotes.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.delivery.config import DeliveryConfig
from pipelines.errors import DataQualityError
from pipelines.privacy.models import check_no_erasure_since, newest_erasure
from pipelines.quality.checks import CHECKS
from pipelines.quality.config import GateConfig
from pipelines.quality.results import GateReport, dq_results_frame, verdict_of
from pipelines.quality.suite import SuiteInputs
from pipelines.quality.validation import run_suites, to_result
from pipelines.quality.volume import trailing_volume
from pipelines.warehouse.partitions import replace_partition

log = logging.getLogger(__name__)

DOCS_FOLDER = "data_docs"
DEFAULT_CONFIG = GateConfig()
DEFAULT_DELIVERY = DeliveryConfig()


def run_quality_gate(
    engine: Engine,
    as_of: dt.date,
    artifacts_dir: Path,
    config: GateConfig = DEFAULT_CONFIG,
    delivery: DeliveryConfig = DEFAULT_DELIVERY,
) -> GateReport:
    """Validate the events, impressions and outcomes with batch_date = `as_of`; record the results; raise on a
    critical failure. `delivery` supplies the attribution window (the effects' own) that late outcomes are
    held to."""
    erasure_seen = newest_erasure(engine)
    _require_loaded(engine, as_of)
    started = time.perf_counter()
    baseline = trailing_volume(engine, as_of, config.volume_window_days)
    inputs = SuiteInputs(day=as_of, config=config, baseline=baseline, delivery=delivery)
    docs_dir = Path(artifacts_dir) / DOCS_FOLDER / as_of.isoformat()
    building = docs_dir.with_name(f".{docs_dir.name}.{uuid.uuid4().hex[:8]}.building")
    try:
        gx_results = run_suites(engine, inputs, building)
        order = {check.name: n for n, check in enumerate(CHECKS)}  # GX groups results its own way; read in ours
        results = tuple(sorted((to_result(engine, inputs, r) for r in gx_results), key=lambda r: order[r.name]))
        events = next(r.observed_value for r in results if r.name == "events.batch.not_empty")
        report = GateReport(
            as_of=as_of,
            verdict=verdict_of(results),
            results=results,
            events_checked=events if isinstance(events, int) else 0,
            seconds=time.perf_counter() - started,
            data_docs=docs_dir / "index.html",
        )
        with engine.begin() as conn:  # the Data Docs render the same samples: both land under the guard
            check_no_erasure_since(conn, erasure_seen)
            replace_partition(conn, "dq_results", as_of, dq_results_frame(results))
            _swap_in(building, docs_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info(
        "quality gate %s: %s, %d events checked by %d expectations in %.1f s (%.0f events/s)",
        as_of,
        report.verdict,
        report.events_checked,
        len(results),
        report.seconds,
        report.events_checked / max(report.seconds, 1e-9),
    )
    for warning in report.failed("warning"):
        log.warning("quality gate %s warning: %s", as_of, warning.describe())
    if report.verdict == "fail":
        raise DataQualityError(report.failure_message())
    return report


def _require_loaded(engine: Engine, as_of: dt.date) -> None:
    """Refuse a date after the newest loaded batch: a wrong date or a load not yet run, not an empty day.

    Nothing is recorded for such a date (no dq_results partition, no Data Docs) since no load has reached it.
    """
    with engine.connect() as conn:
        newest = conn.execute(sa.text("SELECT max(batch_date) FROM events")).scalar()
    if newest is None:
        raise DataQualityError(
            f"business date {as_of} cannot be checked: events holds no batch at all; load the source tables first"
        )
    if as_of > newest:
        raise DataQualityError(
            f"business date {as_of} is after the newest loaded batch {newest}: its events have not been loaded "
            "(pick a date that has a batch, or load that day's events first); nothing was checked or written"
        )


def _swap_in(built: Path, final: Path) -> None:
    """Replace the date's Data Docs folder with the freshly built one (a rerun's docs replace the old)."""
    old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
    if final.exists():
        final.rename(old)
    built.rename(final)
    shutil.rmtree(old, ignore_errors=True)

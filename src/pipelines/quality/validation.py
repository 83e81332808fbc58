"""Run the suites with Great Expectations against PostgreSQL, quietly and offline, and read the results.

The GX context is ephemeral (in memory): nothing is written into the repository or a GX project folder.
The only files are the Data Docs site, built into the folder the caller names. Analytics and progress
bars are off; GX imports inside the functions because importing it takes seconds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.quality.checks import TABLE_COLUMNS
from pipelines.quality.docs_assets import localize_assets
from pipelines.quality.results import ExpectationResult, jsonable
from pipelines.quality.suite import BATCH_SUITE, SCHEMA_SUITE, SuiteInputs, batch_query, build_expectations

if TYPE_CHECKING:
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.data_context import AbstractDataContext

SITE = "dq"
APPLICATION_NAME = "marketing-pipelines-dq"  # how GX's connections show in pg_stat_activity
UNEXPECTED_ROWS = "unexpected_rows_expectation"


def quiet_context(docs_dir: Path) -> AbstractDataContext:
    """An in-memory GX context whose only output is a Data Docs site in `docs_dir`."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # its INFO lines (one per registered API) drown the task log
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                # validation pages show every expectation with its parameters; separate suite pages and
                # the profiling section would only double the rendering time
                "site_section_builders": {"expectations": "0", "profiling": "0"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_suites(engine: Engine, inputs: SuiteInputs, docs_dir: Path) -> list[ExpectationValidationResult]:
    """Validate each checked table's schema and the day's batch; build Data Docs; return every result."""
    context = quiet_context(docs_dir)  # first: it quiets GX's logger before GX is imported
    import great_expectations as gx

    source = context.data_sources.add_postgres(
        "warehouse",
        connection_string=engine.url.render_as_string(hide_password=False),
        kwargs={"connect_args": {"options": "-c timezone=UTC", "application_name": APPLICATION_NAME}},
    )
    day = inputs.day.isoformat()
    suites = build_expectations(inputs)
    results = []
    try:
        for table, columns in TABLE_COLUMNS.items():
            batches = {
                f"{table}_{SCHEMA_SUITE}": source.add_table_asset(table, table_name=table),
                f"{table}_{BATCH_SUITE}": source.add_query_asset(
                    f"{table}_batch_{day}", query=batch_query(inputs.day, table)
                ),
            }
            definitions = []
            for name, asset in batches.items():
                batch = asset.add_batch_definition_whole_table(day)
                suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=suites[name]))
                definitions.append(
                    context.validation_definitions.add(
                        gx.ValidationDefinition(name=f"{name}_{day}", data=batch, suite=suite)
                    )
                )
            # One checkpoint per table: the columns that make a bad value's "index" its whole row differ.
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"quality_gate_{table}_{day}",
                    validation_definitions=definitions,
                    result_format={
                        "result_format": "SUMMARY",
                        "partial_unexpected_count": inputs.config.sample_rows,
                        "unexpected_index_column_names": list(columns),
                    },
                )
            )
            run = checkpoint.run(run_id=gx.RunIdentifier(run_name=f"quality_gate_{day}"))
            results += [result for validation in run.run_results.values() for result in validation.results]
    finally:  # GX keeps pooled connections (reflection engine and execution engine) until collected
        source.get_engine().dispose()
        source.get_execution_engine().engine.dispose()
    # Once for the whole run: UpdateDataDocsAction would rebuild the site once per validation definition.
    context.build_data_docs(site_names=[SITE])
    localize_assets(docs_dir)  # GX's pages load their CSS/JS from CDNs: point them at local copies
    return results


def _raised(result: ExpectationValidationResult) -> str | None:
    """The exception GX caught while computing this expectation, if any (e.g. a missing column)."""
    info: Any = result.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "error")
    return None


def _bad_rows_sample(engine: Engine, inputs: SuiteInputs, table: str, query: str) -> tuple[dict[str, Any], ...]:
    """A few rows of an UnexpectedRowsExpectation's query, substituted exactly as GX does for joins."""
    sql = query.format(batch=f"({batch_query(inputs.day, table)})")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM ({sql}) AS bad LIMIT :n"), {"n": inputs.config.sample_rows})
        return tuple(jsonable(dict(row._mapping)) for row in rows)


def to_result(engine: Engine, inputs: SuiteInputs, gx_result: ExpectationValidationResult) -> ExpectationResult:
    """Our record of one GX result: stable name, severity, observed value, bad-row count and sample."""
    config = gx_result.expectation_config
    meta = config.meta or {}
    name = meta["name"]
    raw: dict[str, Any] = dict(gx_result.result or {})
    error = _raised(gx_result)
    observed: Any
    unexpected: int | None = None
    sample: tuple[dict[str, Any], ...] = ()
    if error is not None:
        observed = {"error": error}
    elif config.type == UNEXPECTED_ROWS:
        observed = raw.get("observed_value")
        unexpected = int(observed or 0)
        if unexpected:
            sample = _bad_rows_sample(engine, inputs, meta["table"], config.kwargs["unexpected_rows_query"])
    elif "unexpected_count" in raw:
        observed = {"element_count": raw.get("element_count"), "unexpected_percent": raw.get("unexpected_percent")}
        unexpected = int(raw["unexpected_count"] or 0)
        sample = tuple(jsonable(row) for row in raw.get("partial_unexpected_index_list") or [])
    else:
        observed = raw.get("observed_value")
        mismatched = (raw.get("details") or {}).get("mismatched")
        if mismatched and not gx_result.success:
            sample = (jsonable(mismatched),)
    if "context" in meta:
        observed = {"observed": observed, **meta["context"]}
    return ExpectationResult(
        name=name,
        expectation_type=config.type,
        table=meta["table"],
        column=meta.get("column"),
        severity=inputs.config.severity_of(name),
        success=bool(gx_result.success) and error is None,
        observed_value=jsonable(observed),
        unexpected_count=unexpected,
        sample=sample[: inputs.config.sample_rows],
    )

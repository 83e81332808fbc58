"""What the gate found: one result per check, the day's report, its dq_results rows and its error message."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipelines.quality.checks import CHECKS_BY_NAME, Severity

if TYPE_CHECKING:
    import pandas as pd

Verdict = Literal["pass", "warn", "fail"]
SHOWN_IN_MESSAGE = 3  # bad rows per failed check in the exception text; dq_results keeps `sample_rows`


def jsonable(value: Any) -> Any:
    """Plain JSON types for database values: Decimal -> float, timestamps -> ISO 8601 in UTC."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


@dataclass(frozen=True)
class ExpectationResult:
    """One check's outcome, in the shape of a dq_results row."""

    name: str
    expectation_type: str
    table: str
    column: str | None
    severity: Severity
    success: bool
    observed_value: Any
    unexpected_count: int | None
    sample: tuple[dict[str, Any], ...]

    def describe(self) -> str:
        """One line for logs and errors: what failed, how much, and a few of the bad rows."""
        check = CHECKS_BY_NAME[self.name]
        what = f"{self.name} ({self.expectation_type} on {self.table}{'.' + self.column if self.column else ''})"
        if self.unexpected_count is not None:
            found = f"{self.unexpected_count} bad row(s): {check.explains}"
        else:
            found = f"{check.explains}; observed {json.dumps(self.observed_value, sort_keys=True)}"
        rows = "".join(f"\n      {json.dumps(row, sort_keys=True)}" for row in self.sample[:SHOWN_IN_MESSAGE])
        return f"{what}: {found}{rows}"


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict for one business date."""

    as_of: dt.date
    verdict: Verdict
    results: tuple[ExpectationResult, ...]
    events_checked: int
    seconds: float
    data_docs: Path

    def failed(self, severity: Severity) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success and r.severity == severity)

    def summary(self) -> dict[str, Any]:
        """Small and JSON-able: the Airflow task's return value."""
        return {
            "as_of": self.as_of.isoformat(),
            "verdict": self.verdict,
            "events_checked": self.events_checked,
            "expectations": len(self.results),
            "passed": sum(r.success for r in self.results),
            "critical_failed": [r.name for r in self.failed("critical")],
            "warnings": [r.name for r in self.failed("warning")],
            "seconds": round(self.seconds, 2),
            "data_docs": str(self.data_docs),
        }

    def failure_message(self) -> str:
        """Names every failed critical check with a few bad rows; says where the full record is."""
        failed = self.failed("critical")
        lines = [
            f"data-quality gate failed for the batches of {self.as_of}: {len(failed)} critical check(s) failed",
            *(f"  - {r.describe()}" for r in failed),
            f"All results: dq_results (as_of_date = {self.as_of}); Data Docs: {self.data_docs}",
        ]
        return "\n".join(lines)


def verdict_of(results: tuple[ExpectationResult, ...]) -> Verdict:
    if any(not r.success and r.severity == "critical" for r in results):
        return "fail"
    return "warn" if any(not r.success for r in results) else "pass"


def dq_results_frame(results: tuple[ExpectationResult, ...]) -> pd.DataFrame:
    """dq_results rows without the date column (the partition write adds it); JSON columns as text."""
    import pandas as pd

    return pd.DataFrame(
        {
            "expectation": [r.name for r in results],
            "expectation_type": [r.expectation_type for r in results],
            "table_name": [r.table for r in results],
            "column_name": [r.column for r in results],
            "severity": [r.severity for r in results],
            "success": [r.success for r in results],
            "observed_value": [json.dumps(r.observed_value, sort_keys=True) for r in results],
            "unexpected_count": pd.array([r.unexpected_count for r in results], dtype="Int64"),
            "unexpected_sample": [json.dumps(list(r.sample), sort_keys=True) for r in results],
        }
    )

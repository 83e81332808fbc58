"""The data-quality gate: Great Expectations checks of a business date's batches, results in dq_results.

Importing this package is cheap; Great Expectations is imported only when the gate runs.
"""

from pipelines.quality.checks import CHECKS, Check
from pipelines.quality.config import GateConfig
from pipelines.quality.gate import run_quality_gate
from pipelines.quality.results import ExpectationResult, GateReport

__all__ = ["CHECKS", "Check", "ExpectationResult", "GateConfig", "GateReport", "run_quality_gate"]

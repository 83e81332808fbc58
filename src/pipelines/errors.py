"""The project's own failures: a small hierarchy so callers can tell data problems from bugs.

`DataError` and its subclasses mean "the input is wrong and a retry will not fix it": the DAG turns
them into `AirflowFailException` so Airflow does not burn retries on them.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class for every failure this project raises on purpose."""


class ConfigError(PipelineError):
    """A setting or parameter is missing, unknown or out of range."""


class DataError(PipelineError):
    """The data is wrong; retrying the same task on the same data cannot succeed."""


class SourceFormatError(DataError):
    """A source file is malformed. Names the file, the line and the reason."""

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class DataQualityError(DataError):
    """A critical data-quality expectation failed for the business date."""


class MigrationError(PipelineError):
    """The database schema cannot be brought to the version this code expects."""

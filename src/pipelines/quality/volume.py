"""The day's expected event volume: the mean of the batches delivered in the days before it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class VolumeBaseline:
    """Trailing mean of daily event counts; `days` is how many of the window's days had any events."""

    window_days: int
    days: int
    mean: float | None

    def bounds(self, tolerance: float) -> tuple[int, int] | None:
        """Allowed [low, high] event count, or None when there is no history to compare with."""
        if self.mean is None:
            return None
        return max(0, math.ceil(self.mean * (1 - tolerance))), math.floor(self.mean * (1 + tolerance))

    def describe(self, tolerance: float) -> dict[str, object]:
        bounds = self.bounds(tolerance)
        if bounds is None:
            return {"note": f"no events in the {self.window_days} days before: nothing to compare the volume with"}
        return {"trailing_mean": round(self.mean or 0.0, 2), "history_days": self.days, "allowed": list(bounds)}


def trailing_volume(engine: Engine, day: dt.date, window_days: int) -> VolumeBaseline:
    """Mean daily count over the batches of [day - window, day). Days without a batch do not count as zero:
    a missing load upstream is the empty-day check's business, not a reason to lower tomorrow's bar."""
    query = sa.text(
        """SELECT count(*) AS n FROM events
           WHERE batch_date >= :start AND batch_date < :day
           GROUP BY batch_date"""
    )
    with engine.connect() as conn:
        counts = [row.n for row in conn.execute(query, {"start": day - dt.timedelta(days=window_days), "day": day})]
    mean = sum(counts) / len(counts) if counts else None
    return VolumeBaseline(window_days=window_days, days=len(counts), mean=mean)

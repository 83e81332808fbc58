"""Reads and the plot behind the Effects page: the closed loop of one business date.

Each read touches the date's partition of `effect_reports` or `delivery_plan` (a few hundred rows: one
per creative x segment x placement x arm), and the plot the last `SERIES_DAYS` partitions of one segment.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SERIES_DAYS = 14

_RATES = """
SELECT placement, segment_id, creative_id, arm,
       max(n) FILTER (WHERE metric = 'ctr') AS impressions,
       max(value) FILTER (WHERE metric = 'ctr') AS ctr,
       max(low) FILTER (WHERE metric = 'ctr') AS ctr_low,
       max(high) FILTER (WHERE metric = 'ctr') AS ctr_high,
       max(value) FILTER (WHERE metric = 'cvr') AS cvr,
       max(low) FILTER (WHERE metric = 'cvr') AS cvr_low,
       max(high) FILTER (WHERE metric = 'cvr') AS cvr_high,
       max(value) FILTER (WHERE metric = 'revenue_per_impression') AS rpi,
       max(low) FILTER (WHERE metric = 'revenue_per_impression') AS rpi_low,
       max(high) FILTER (WHERE metric = 'revenue_per_impression') AS rpi_high
FROM effect_reports
WHERE as_of_date = :d AND kind = 'rate'
GROUP BY placement, segment_id, creative_id, arm
ORDER BY placement, segment_id, arm, creative_id NULLS FIRST
"""


def rates(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """CTR, CVR and revenue per impression with their intervals, one row per creative x segment x arm."""
    return [dict(r._mapping) for r in conn.execute(sa.text(_RATES), {"d": day})]


def summaries(conn: Connection, day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """The date's lift, recommendation and off-policy rows, by kind."""
    rows = conn.execute(
        sa.text(
            """SELECT kind, metric, placement, arm, policy, value, low, high, n, method FROM effect_reports
               WHERE as_of_date = :d AND kind IN ('lift', 'recs', 'ope')
               ORDER BY kind, placement NULLS FIRST, metric, policy, arm"""
        ),
        {"d": day},
    )
    out: dict[str, list[dict[str, Any]]] = {"lift": [], "recs": [], "ope": []}
    for r in rows:
        out[r.kind].append(dict(r._mapping))
    return out


def plan(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """The plan the date's run wrote for the next day, biggest shares first within each segment."""
    rows = conn.execute(
        sa.text(
            """SELECT serve_date, segment_id, placement, arm, creative_id, item_id, position, policy, share,
                      impressions, clicks, posterior_mean
               FROM delivery_plan WHERE as_of_date = :d
               ORDER BY placement, segment_id, arm DESC, share DESC, creative_id, position"""
        ),
        {"d": day},
    )
    return [dict(r._mapping) for r in rows]


def series(conn: Connection, day: dt.date, segment_id: int) -> list[dict[str, Any]]:
    """The personalised arm's CTR per creative and placement of one segment over the last SERIES_DAYS dates."""
    rows = conn.execute(
        sa.text(
            """SELECT as_of_date, placement, creative_id, value, low, high FROM effect_reports
               WHERE as_of_date BETWEEN :start AND :d AND kind = 'rate' AND metric = 'ctr'
                 AND segment_id = :s AND arm = 'personalised' AND creative_id IS NOT NULL AND value IS NOT NULL
               ORDER BY placement, creative_id, as_of_date"""
        ),
        {"start": day - dt.timedelta(days=SERIES_DAYS - 1), "d": day, "s": segment_id},
    )
    return [dict(r._mapping) for r in rows]


def series_png(points: list[dict[str, Any]], segment_id: int) -> bytes:
    """CTR per creative over dates with its 95% band, one panel per placement."""
    from matplotlib.dates import DateFormatter, DayLocator

    from pipelines.plots import panels, png

    placements = sorted({p["placement"] for p in points}) or ["no impressions"]
    fig, axes = panels(len(placements), (6.0 * len(placements), 3.6))
    axes = axes if len(placements) > 1 else [axes]
    for ax, placement in zip(axes, placements, strict=True):
        chosen = [p for p in points if p["placement"] == placement]
        for creative in sorted({p["creative_id"] for p in chosen}):
            line = [p for p in chosen if p["creative_id"] == creative]
            days = [p["as_of_date"] for p in line]
            ax.plot(days, [p["value"] for p in line], marker="o", label=creative)
            ax.fill_between(days, [p["low"] for p in line], [p["high"] for p in line], alpha=0.2)
        ax.set_title(placement)
        ax.set_ylabel("click rate (95% interval)")
        ax.xaxis.set_major_locator(DayLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
        ax.tick_params(axis="x", labelrotation=45)
        if chosen:
            ax.legend(fontsize=7)
    buffer = io.BytesIO()
    png(fig, buffer, f"Segment {segment_id}: click rate per creative, personalised arm")
    return buffer.getvalue()

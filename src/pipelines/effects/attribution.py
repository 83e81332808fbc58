"""Impressions with their attributed outcomes, as SQL that aggregates in PostgreSQL.

One definition for planning (the evidence behind the shares) and evaluation (the day's rates): an
impression is clicked when a click lands within the click window after it, converted when it was clicked
and a conversion lands within the conversion window, and its revenue counts only when converted. Only
outcome batches delivered by the as-of date are read, so a rerun of a date sees the same outcomes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.delivery.config import DeliveryConfig

# A CTE `logged`: one row per impression of batches [:first, :last] with clicked, converted and revenue.
LOGGED = """
logged AS (
    SELECT i.impression_id, i.ts, i.user_id, i.placement, i.position, i.creative_id, i.item_id,
           i.campaign_id, i.segment_id, i.policy, i.policy_version, i.propensity, i.arm,
           coalesce(o.click_ts >= i.ts AND o.click_ts < i.ts + make_interval(hours => :click_hours), false)
               AS clicked,
           coalesce(o.click_ts >= i.ts AND o.click_ts < i.ts + make_interval(hours => :click_hours)
                    AND o.conversion_ts >= i.ts
                    AND o.conversion_ts < i.ts + make_interval(days => :conversion_days), false) AS converted,
           o.revenue
    FROM impressions AS i
    LEFT JOIN (
        SELECT impression_id, min(click_ts) AS click_ts, min(conversion_ts) AS conversion_ts,
               sum(revenue) AS revenue
        FROM outcomes
        WHERE batch_date BETWEEN :first AND :as_of
        GROUP BY impression_id
    ) AS o USING (impression_id)
    WHERE i.batch_date BETWEEN :first AND :last
)"""


def logged_params(config: DeliveryConfig, as_of: dt.date, first: dt.date, last: dt.date) -> dict[str, Any]:
    """Bind values for `LOGGED`: impression batches [first, last], outcome batches up to `as_of`."""
    return {
        "first": first,
        "last": last,
        "as_of": as_of,
        "click_hours": config.click_window_hours,
        "conversion_days": config.conversion_window_days,
    }

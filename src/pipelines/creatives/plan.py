"""What to generate on a business date: live campaigns x target segments x the categories they care about.

Segments come from the `segments` table of the same date (the user-profile VAE's output). A campaign with
no target segments, or a date without segments, gets whole-audience creatives (segment -1) whose
categories are ranked by the audience's recent interactions, read as of the date.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.errors import DataError
from pipelines.warehouse.reads import day_bounds

WHOLE_AUDIENCE = -1
HEADLINE_FIELDS = ("campaign", "segment", "category", "discount", "price")


@dataclass(frozen=True)
class Campaign:
    campaign_id: int
    name: str
    categories: tuple[str, ...]
    target_segments: tuple[int, ...]
    headline_template: str
    discount_pct: float | None


@dataclass(frozen=True)
class Audience:
    segment_id: int
    label: str
    affinity: dict[str, float]  # category -> how much the audience cares, higher first


@dataclass(frozen=True)
class Request:
    """One (campaign, audience, category) whose candidates are generated, scored and kept."""

    campaign: Campaign
    audience: Audience
    category: str


def check_template(campaign_id: int, template: str) -> None:
    """A headline template may only use the documented fields; anything else names the campaign."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise DataError(f"campaign {campaign_id}: headline_template {template!r} is malformed: {exc}") from None
    unknown = sorted(fields - set(HEADLINE_FIELDS))
    if unknown:
        raise DataError(
            f"campaign {campaign_id}: headline_template uses unknown field(s) {unknown}; "
            f"known: {', '.join(HEADLINE_FIELDS)}"
        )


def live_campaigns(engine: Engine, as_of: dt.date) -> list[Campaign]:
    """Campaigns whose [start_date, end_date] window contains the business date, by id."""
    query = sa.text(
        """SELECT campaign_id, name, categories, target_segments, headline_template, discount_pct
           FROM campaigns WHERE start_date <= :d AND end_date >= :d ORDER BY campaign_id"""
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"d": as_of}).fetchall()
    campaigns = []
    for row in rows:
        check_template(row.campaign_id, row.headline_template)
        discount = None if row.discount_pct is None else float(row.discount_pct)
        campaigns.append(
            Campaign(
                int(row.campaign_id),
                row.name,
                tuple(row.categories),
                tuple(int(s) for s in row.target_segments),
                row.headline_template,
                discount,
            )
        )
    return campaigns


def campaigns_with_creatives(conn: Connection, as_of: dt.date) -> set[int]:
    rows = conn.execute(sa.text("SELECT DISTINCT campaign_id FROM ad_creatives WHERE campaign_date = :d"), {"d": as_of})
    return {int(r[0]) for r in rows}


def segments_on(engine: Engine, as_of: dt.date) -> dict[int, Audience]:
    """The VAE's segments of the business date (empty when it has not written any)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT segment_id, label, top_categories FROM segments WHERE as_of_date = :d ORDER BY segment_id"),
            {"d": as_of},
        ).fetchall()
    segments = {}
    for row in rows:
        affinity = {str(e["category"]): float(e["affinity"]) for e in (row.top_categories or [])}
        segments[int(row.segment_id)] = Audience(int(row.segment_id), row.label, affinity)
    return segments


def whole_audience(engine: Engine, as_of: dt.date, window_days: int) -> Audience:
    """Category shares of all interactions in the window ending with the business date."""
    start, _ = day_bounds(as_of - dt.timedelta(days=window_days - 1))
    _, end = day_bounds(as_of)
    query = sa.text(
        """SELECT it.category, count(*) AS n FROM events AS e JOIN items AS it USING (item_id)
           WHERE e.event_ts >= :start AND e.event_ts < :end GROUP BY it.category"""
    )
    with engine.connect() as conn:
        counts = {row.category: int(row.n) for row in conn.execute(query, {"start": start, "end": end})}
    total = sum(counts.values()) or 1
    return Audience(WHOLE_AUDIENCE, "everyone", {c: n / total for c, n in counts.items()})


def category_prices(engine: Engine) -> dict[str, float]:
    """Lowest list price per category: the 'from' price a headline may quote."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT category, min(price) AS price FROM items GROUP BY category"))
        return {row.category: float(row.price) for row in rows}


def plan_requests(
    campaign: Campaign,
    segments: dict[int, Audience],
    everyone: Audience,
    known_categories: tuple[str, ...],
    per_audience: int,
) -> tuple[list[Request], dict[str, list]]:
    """The requests for one campaign and notes on what was skipped (missing segments, unknown categories).

    Each audience gets the campaign's categories it cares most about (ties keep the campaign's order).
    """
    usable = [c for c in campaign.categories if c in known_categories]
    notes: dict[str, list] = {
        "unknown_categories": [c for c in campaign.categories if c not in known_categories],
        "missing_segments": [s for s in campaign.target_segments if s not in segments],
    }
    # No target segments means the whole audience; targets absent from the date's segments fall back to it.
    audiences = [segments[s] for s in campaign.target_segments if s in segments] or [everyone]
    requests = []
    for audience in audiences:
        ranked = sorted(usable, key=lambda c: -audience.affinity.get(c, 0.0))  # stable: campaign order on ties
        requests.extend(Request(campaign, audience, c) for c in ranked[:per_audience])
    return requests, notes


def headline(request: Request, prices: dict[str, float]) -> str:
    """Fill the campaign's template; the discount reads '20' for 20.00 and '12.5' for 12.50."""
    discount = request.campaign.discount_pct
    values = {
        "campaign": request.campaign.name,
        "segment": request.audience.label,
        "category": request.category,
        "discount": "" if discount is None else f"{discount:g}",
        "price": f"{prices.get(request.category, 0.0):.2f}",
    }
    return " ".join(request.campaign.headline_template.format_map(values).split())

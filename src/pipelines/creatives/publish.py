"""Creatives for every live campaign of a date, written per (campaign_date, campaign_id) partition scope.

Every request's noise seed derives from (model, business date, campaign, segment, category), and the
generator is the champion that was in force on the date, so a rerun or a backfill writes the same bytes.
Campaigns not live on the date lose any creatives they had for it (their window may have been edited).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Connection, Engine

from pipelines.compute import derive_seed
from pipelines.creatives.banner import compose_banner, contact_sheet
from pipelines.creatives.bundle import Bundle
from pipelines.creatives.config import MODEL_NAME, CreativesConfig, banner_size
from pipelines.creatives.plan import (
    Campaign,
    campaigns_with_creatives,
    category_prices,
    headline,
    plan_requests,
    segments_on,
    whole_audience,
)
from pipelines.creatives.select import generate, select_top
from pipelines.warehouse.partitions import replace_partition

log = logging.getLogger(__name__)

COLUMNS = ["segment_id", "category", "rank", "banner_size", "image", "headline", "scores", "model_version"]
KEY = ["segment_id", "category", "rank", "banner_size"]
REVIEW = ["status", "reviewed_by", "reviewed_at"]


def keep_reviews(conn: Connection, as_of: dt.date, campaign_id: int, frame: pd.DataFrame) -> pd.DataFrame:
    """Carry a person's review over to a regenerated creative whose key, picture and headline are unchanged.

    A rerun or backfill writes the same bytes, so an approval given in the UI must survive it; a creative
    that changed in any way goes back to `pending_review`.
    """
    import hashlib

    query = sa.text(
        """SELECT segment_id, category, rank, banner_size, md5(image) AS digest, headline, status, reviewed_by,
                  reviewed_at
           FROM ad_creatives WHERE campaign_date = :d AND campaign_id = :c AND status <> 'pending_review'"""
    )
    reviewed = pd.read_sql_query(query, conn, params={"d": as_of, "c": campaign_id})
    out = frame.assign(status="pending_review", reviewed_by=None, reviewed_at=None)
    if reviewed.empty or frame.empty:
        return out
    out["digest"] = out["image"].map(lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest())
    merged = out.drop(columns=REVIEW).merge(reviewed, on=[*KEY, "digest", "headline"], how="left")
    merged["status"] = merged["status"].fillna("pending_review")
    merged["reviewed_at"] = merged["reviewed_at"].astype(object).where(merged["reviewed_at"].notna(), None)
    merged["reviewed_by"] = merged["reviewed_by"].astype(object).where(merged["reviewed_by"].notna(), None)
    return merged.drop(columns=["digest"])[[*COLUMNS, *REVIEW]]


def request_seed(as_of: dt.date, campaign_id: int, segment_id: int, category: str) -> int:
    return derive_seed(MODEL_NAME, as_of, campaign_id, segment_id, category)


def campaign_frame(
    context: dict[str, Any],
    campaign: Campaign,
    as_of: dt.date,
    bundle: Bundle,
    config: CreativesConfig,
    device: torch.device,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All banners of one campaign on one date, and the campaign's part of the summary."""
    requests, notes = plan_requests(
        campaign, context["segments"], context["everyone"], bundle.classes, config.categories_per_segment
    )
    rows: list[dict[str, Any]] = []
    per_segment: dict[str, int] = {}
    for request in requests:
        segment_id = request.audience.segment_id
        seed = request_seed(as_of, campaign.campaign_id, segment_id, request.category)
        images = generate(bundle, bundle.class_index(request.category), config.candidates_per_category, seed, device)
        text = headline(request, context["prices"])
        for pick in select_top(bundle, images, bundle.class_index(request.category), config):
            scores = pick.scores() | {
                "affinity": round(request.audience.affinity.get(request.category, 0.0), 6),
                "seed": seed,
            }
            for size in config.banner_sizes:
                png = compose_banner(
                    pick.pixels, banner_size(size), text, config.call_to_action, palette=campaign.campaign_id
                )
                rows.append(
                    {
                        "segment_id": segment_id,
                        "category": request.category,
                        "rank": pick.rank,
                        "banner_size": size,
                        "image": png,
                        "headline": text,
                        "scores": scores,
                        "model_version": bundle.version,
                    }
                )
                per_segment[str(segment_id)] = per_segment.get(str(segment_id), 0) + 1
    summary = {"creatives": len(rows), "per_segment": per_segment, **{k: v for k, v in notes.items() if v}}
    return pd.DataFrame(rows, columns=COLUMNS), summary


def write_contact_sheet(frame: pd.DataFrame, path: Path, size: str) -> Path | None:
    """One PNG of the campaign date's banners of one size, captioned segment / category / rank."""
    chosen = frame[frame["banner_size"] == size]
    if chosen.empty:
        return None
    tiles = [(f"seg {r.segment_id} | {r.category} | #{r.rank}", r.image) for r in chosen.itertuples()]
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles).save(path, format="PNG")
    return path


def publish_creatives(
    engine: Engine,
    conn: Connection,
    as_of: dt.date,
    campaigns: list[Campaign],
    bundle: Bundle | None,
    config: CreativesConfig,
    out_dir: Path,
    device: torch.device,
) -> dict[str, Any]:
    """Generate, compose and write every live campaign's creatives on `conn`; returns counts per campaign.
    Without a generator (`bundle` None) the date keeps no creatives. Reads of `ad_creatives` go through
    `conn` too: its first write creates the partition, which locks the table for other connections."""
    started = time.perf_counter()
    if bundle is None:
        campaigns = []
    context = {
        "segments": segments_on(engine, as_of),
        "everyone": whole_audience(engine, as_of, config.affinity_window_days),
        "prices": category_prices(engine),
    }
    per_campaign: dict[str, Any] = {}
    total = 0
    for campaign in campaigns:
        assert bundle is not None
        frame, summary = campaign_frame(context, campaign, as_of, bundle, config, device)
        frame = keep_reviews(conn, as_of, campaign.campaign_id, frame)
        summary["kept_reviews"] = int((frame["status"] != "pending_review").sum())
        scope = {"campaign_id": campaign.campaign_id}
        total += replace_partition(conn, "ad_creatives", as_of, frame, date_column="campaign_date", scope=scope)
        sheet = write_contact_sheet(frame, out_dir / f"campaign-{campaign.campaign_id}.png", config.banner_sizes[0])
        per_campaign[str(campaign.campaign_id)] = summary | {"contact_sheet": None if sheet is None else str(sheet)}
        log.info(
            "campaign %d on %s: %d creatives %s",
            campaign.campaign_id,
            as_of,
            summary["creatives"],
            summary["per_segment"],
        )
    stale = campaigns_with_creatives(conn, as_of) - {c.campaign_id for c in campaigns}
    for campaign_id in sorted(stale):
        empty = pd.DataFrame(columns=COLUMNS)
        replace_partition(
            conn, "ad_creatives", as_of, empty, date_column="campaign_date", scope={"campaign_id": campaign_id}
        )
    seconds = time.perf_counter() - started
    log.info(
        "wrote %d creatives for %d campaigns on %s in %.1f s (%.1f creatives/s)",
        total,
        len(campaigns),
        as_of,
        seconds,
        total / max(seconds, 1e-9),
    )
    return {
        "creatives": total,
        "campaigns": per_campaign,
        "removed_for_campaigns_not_live": sorted(stale),
        "seconds": round(seconds, 1),
    }

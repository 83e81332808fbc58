"""A small, fully populated business date for the Marketing pages: the web tests, the browser check and the
page-latency benchmark write it so the pages have something of every kind to show, whatever the model
packages have produced so far. Bulk rows go through warehouse.partitions (COPY).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.creatives.banner import compose_banner
from pipelines.creatives.config import CreativesConfig, banner_size
from pipelines.warehouse.partitions import copy_frames, replace_partition

CREATIVE_CATEGORIES = ("shoes", "bags")
BANNER_SIZES = CreativesConfig().banner_sizes  # the sizes the creatives task composes: 300x250 and 728x90


@dataclass(frozen=True)
class SampleSpec:
    day: dt.date = dt.date(2024, 3, 31)
    users: int = 40
    items: int = 30
    segments: int = 3
    top_k: int = 10
    campaign_id: int = 7


def png(width: int, height: int, shade: int) -> bytes:
    """A real PNG banner (a coloured rectangle with a frame) so the browser has an image to decode."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (shade % 256, 90, 200 - shade % 150))
    ImageDraw.Draw(image).rectangle((4, 4, width - 5, height - 5), outline=(255, 255, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_sample(engine: Engine, spec: SampleSpec = SampleSpec(), artifacts: Path | None = None) -> None:
    """Source rows (users, items, one campaign) and every output table for `spec.day`.

    With `artifacts`, also a training-curve PNG beside a model artifact and a Data Docs page.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    day = spec.day
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, spec.users + 1),
            "signup_date": day - dt.timedelta(days=100),
            "age_group": "25-34",
            "region": "north",
        }
    )
    categories = ["shoes", "bags", "shirts"]
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, spec.items + 1),
            "category": [categories[i % 3] for i in range(spec.items)],
            "price": 9.99,
            "title": [f"Item {i}" for i in range(1, spec.items + 1)],
        }
    )
    with engine.begin() as conn:
        copy_frames(conn, "users", users)
        copy_frames(conn, "items", items)
        conn.execute(
            sa.text(
                """INSERT INTO campaigns (campaign_id, name, start_date, end_date, categories, headline_template)
                   VALUES (:c, 'Spring sale', :s, :e, ARRAY['shoes', 'bags'], '{category} for you')"""
            ),
            {"c": spec.campaign_id, "s": day - dt.timedelta(days=5), "e": day + dt.timedelta(days=5)},
        )
    segment_of = (users["user_id"] % spec.segments).to_numpy()
    # Each user bought one item, put another in the cart and viewed a third, the day before.
    did = ("purchase", "cart", "view")
    history_users = np.repeat(users["user_id"].to_numpy(), len(did))
    history = pd.DataFrame(
        {
            "user_id": history_users,
            "item_id": (history_users + np.tile(np.arange(len(did)), spec.users)) % spec.items + 1,
            "event_type": np.tile(did, spec.users),
        }
    )
    with engine.begin() as conn:
        copy_frames(
            conn,
            "events",
            history.assign(
                batch_date=day - dt.timedelta(days=1),
                event_id=np.arange(1, len(history) + 1),
                event_ts=pd.Timestamp(day - dt.timedelta(days=1), tz="UTC") + pd.Timedelta(hours=12),
                price=9.99,
                quantity=1,
            )[["batch_date", "event_id", "user_id", "item_id", "event_type", "event_ts", "price", "quantity"]],
        )
    replace_partition(
        engine,
        "segments",
        day,
        pd.DataFrame(
            {
                "segment_id": range(spec.segments),
                "label": [f"{categories[s % 3]} lovers" for s in range(spec.segments)],
                "size": [int((segment_of == s).sum()) for s in range(spec.segments)],
                "centroid": [[0.1 * s, 0.2] for s in range(spec.segments)],
                "top_categories": [
                    json.dumps([{"category": categories[s % 3], "affinity": 0.5}]) for s in range(spec.segments)
                ],
                "model_version": "user_profile_vae-v1",
                "description": [
                    json.dumps(segment_description(s, int((segment_of == s).sum()))) for s in range(spec.segments)
                ],
            }
        ),
    )
    replace_partition(
        engine,
        "user_profiles",
        day,
        pd.DataFrame(
            {
                "user_id": users["user_id"],
                "embedding": _embedding_literal(engine),
                "segment_id": segment_of,
                "top_categories": json.dumps([{"category": "shoes", "affinity": 0.5}]),
                "model_version": "user_profile_vae-v1",
            }
        ),
    )
    ranks = np.tile(np.arange(1, spec.top_k + 1), spec.users)
    recs = pd.DataFrame(
        {
            "user_id": np.repeat(users["user_id"].to_numpy(), spec.top_k),
            "rank": ranks,
            "item_id": rng.integers(1, spec.items + 1, size=len(ranks)),
            "score": 1.0 / ranks,
            "source": "model",
            "reason_code": "history_item",
            "model_version": "sasrec-v1",
        }
    )
    # The model's reason cycles through the user's three items; users 1 and 2 get the fallbacks.
    recs["reason_item_id"] = (recs["user_id"] + recs["rank"] % 3) % spec.items + 1
    for user, source, code in (
        (1, "segment_popularity", "popular_in_segment"),
        (2, "global_popularity", "popular_in_store"),
    ):
        recs.loc[recs["user_id"] == user, ["source", "reason_code", "reason_item_id"]] = (source, code, None)
    replace_partition(engine, "recommendations", day, recs.astype({"reason_item_id": "Int64"}))
    replace_partition(
        engine,
        "dq_results",
        day,
        pd.DataFrame(
            {
                "expectation": [
                    "events.schema.columns",
                    "events.event_id.unique",
                    "events.price.non_negative",
                    "events.volume.trailing_mean",
                ],
                "expectation_type": [
                    "ExpectTableColumnsToMatchSet",
                    "ExpectColumnValuesToBeUnique",
                    "ExpectColumnValuesToBeBetween",
                    "ExpectTableRowCountToBeBetween",
                ],
                "table_name": "events",
                "column_name": [None, "event_id", "price", None],
                "severity": ["critical", "critical", "critical", "warning"],
                "success": [True, True, True, False],
                # the shapes the gate stores (pipelines.quality.validation.to_result), as JSON text like its rows
                "observed_value": [
                    json.dumps(value)
                    for value in (
                        ["batch_date", "event_id", "user_id", "item_id", "event_type", "event_ts", "price", "quantity"],
                        {"element_count": 4143, "unexpected_percent": 0.0},
                        {"element_count": 4143, "unexpected_percent": 0.0},
                        {"observed": 4143, "trailing_mean": 6250.5, "history_days": 7, "allowed": [4687.88, 7813.13]},
                    )
                ],
                "unexpected_count": pd.array([None, 0, 0, None], dtype="Int64"),
                "unexpected_sample": [None, None, None, None],
            }
        ),
    )
    creatives = [
        {
            "segment_id": segment,
            "category": category,
            "rank": 1,
            "banner_size": size,
            "image": compose_banner(
                rng.integers(0, 256, size=(1, 28, 28), dtype=np.uint8),  # [channels, h, w] like the GAN's
                banner_size(size),
                f"New season {category} for you",
                "Shop now",
                palette=segment,
            ),
            "headline": f"New season {category} for you",
            "scores": {"quality": 0.8, "classifier_confidence": 0.9},
            "model_version": "cgan-v1",
        }
        for segment in range(spec.segments)
        for category in CREATIVE_CATEGORIES
        for size in BANNER_SIZES
    ]
    replace_partition(
        engine,
        "ad_creatives",
        day,
        pd.DataFrame(creatives),
        date_column="campaign_date",
        scope={"campaign_id": spec.campaign_id},
    )
    artifact = None
    if artifacts is not None:
        folder = artifacts / "models" / "sasrec" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        artifact = folder / "model-abcdef1234.pt"
        artifact.write_bytes(b"weights")
        (folder / "model-abcdef1234.png").write_bytes(png(240, 160, 10))
        docs = artifacts / "data_docs" / day.isoformat()
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "index.html").write_text("<html><body><h1>Data Docs</h1></body></html>")
    _register_models(engine, day, artifact)


def segment_description(segment: int, size: int) -> dict[str, object]:
    """A description of the shape `pipelines.profiles.segments.describe_members` writes."""
    return {
        "size": size,
        "top_categories": [
            {"category": "shoes", "share": 0.5 + 0.1 * segment, "lift": 1.5 + segment},
            {"category": "bags", "share": 0.25, "lift": 0.8},
        ],
        "recency_days": {"p25": 1.0, "median": 2.5, "p75": 6.0},
        "events_per_member": {"p25": 2.0, "median": 3.0, "p75": 5.0},
        "demographics": {
            "age_group": {"known_share": 1.0, "top": [{"value": "25-34", "share": 1.0}]},
            "region": {"known_share": 1.0, "top": [{"value": "north", "share": 1.0}]},
        },
    }


def _embedding_literal(engine: Engine) -> str:
    """A 2-d embedding in the column's text form: pgvector's '[...]' (migration 003) or real[]'s '{...}'."""
    with engine.connect() as conn:
        kind = conn.execute(
            sa.text(
                """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = 'user_profiles'::regclass AND attname = 'embedding'"""
            )
        ).scalar_one()
    return "[0,1]" if kind.startswith("vector") else "{0,1}"


def _register_models(engine: Engine, day: dt.date, artifact: Path | None) -> None:
    """Model runs and the lineage the lifecycle records: which version served each model on `day`."""
    runs = [
        ("sasrec", "sasrec-v0", day - dt.timedelta(days=1), "promoted", None, {"valid_ndcg@10": 0.05}),
        (
            "sasrec",
            "sasrec-v1",
            day,
            "promoted",
            "sasrec-v0",
            {"valid_ndcg@10": 0.061, "popularity_valid_ndcg@10": 0.012, "parent_valid_ndcg@10": 0.05},
        ),
        (
            "user_profile_vae",
            "user_profile_vae-v1",
            day,
            "promoted",
            None,
            {"ndcg@100": 0.31, "popularity_ndcg@100": 0.12, "ease_ndcg@100": 0.35, "dp_epsilon_spent": 3.8},
        ),
        # the GAN's candidate of `day` failed the gate: its creatives come from an older champion
        ("creative_gan", "cgan-v1", day - dt.timedelta(days=3), "promoted", None, {"conditional_accuracy": 0.97}),
        ("creative_gan", "cgan-v2", day, "rejected", "cgan-v1", {"conditional_accuracy": 0.5}),
    ]
    served = {"sasrec": "sasrec-v1", "user_profile_vae": "user_profile_vae-v1", "creative_gan": "cgan-v1"}
    with engine.begin() as conn:
        for name, version, as_of, status, parent, metrics in runs:
            conn.execute(
                sa.text(
                    """INSERT INTO model_runs (model_name, version, as_of_date, status, metrics, params, artifact_path,
                                               artifact_sha256, parent_version)
                       VALUES (:m, :v, :d, :s, CAST(:metrics AS jsonb), CAST(:params AS jsonb), :path, :sha, :parent)"""
                ),
                {
                    "m": name,
                    "v": version,
                    "d": as_of,
                    "s": status,
                    "metrics": json.dumps(metrics),
                    # the profile VAE trained with DP-SGD; the others record no budget (the key is null)
                    "params": json.dumps({"dp_epsilon": 4.0 if name == "user_profile_vae" else None}),
                    "path": str(artifact) if artifact is not None and version == "sasrec-v1" else None,
                    "sha": "abcdef1234" + "0" * 54,
                    "parent": parent,
                },
            )
            if status == "promoted":
                conn.execute(
                    sa.text("INSERT INTO model_promotions (model_name, version, as_of_date) VALUES (:m, :v, :d)"),
                    {"m": name, "v": version, "d": as_of},
                )
        for name, version in served.items():
            conn.execute(
                sa.text(
                    """INSERT INTO served_lineage (model_name, as_of_date, version, model_as_of)
                       SELECT model_name, :d, version, as_of_date FROM model_runs
                       WHERE model_name = :m AND version = :v"""
                ),
                {"m": name, "v": version, "d": day},
            )

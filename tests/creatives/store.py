"""A tiny catalogue of 8x8 product images with one drawable shape per category, plus campaigns.

Shapes a small classifier and a few-step GAN can tell apart in seconds: the creative pipeline runs end
to end on it through real PostgreSQL without any downloaded data.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from pipelines.creatives.config import CreativesConfig
from pipelines.warehouse.partitions import copy_frames

CATEGORIES = ("Bags", "Sneakers", "Trousers")
PER_CATEGORY = 30
SIZE = 8
DAY = dt.date(2026, 6, 10)

# Demo-free, seconds-sized settings that still exercise every stage (gate off unless a test sets it).
TINY = CreativesConfig(
    image_size=SIZE,
    z_dim=8,
    g_channels=8,
    d_channels=8,
    train_steps=24,
    batch_size=16,
    checkpoint_every=20,
    log_every=20,
    holdout_fraction=0.2,
    eval_samples=64,
    classifier_epochs=3,
    classifier_batch_size=32,
    classifier_lr=3e-3,
    classifier_channels=8,
    min_conditional_accuracy=0.0,
    min_recall=0.0,
    candidates_per_category=6,
    top_k=2,
    categories_per_segment=2,
)


def shape(category: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 [8, 8]: Bags a ring, Sneakers a low bar, Trousers two legs; jittered and noisy."""
    img = np.zeros((SIZE, SIZE), dtype=np.float64)
    if category == "Bags":
        img[1:7, 1:7] = 1.0
        img[3:5, 3:5] = 0.0
    elif category == "Sneakers":
        img[5:7, 0:8] = 1.0
        img[4, 4:8] = 1.0
    else:
        img[0:8, 1:3] = 1.0
        img[0:8, 5:7] = 1.0
        img[0, 1:7] = 1.0
    img = np.roll(img, int(rng.integers(-1, 2)), axis=1)
    img = np.clip(img * rng.uniform(0.7, 1.0) + rng.normal(0, 0.08, img.shape), 0, 1)
    return (img * 255).round().astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def make_store(engine: Engine, *, campaigns: pd.DataFrame | None = None, seed: int = 0) -> None:
    """Items with images, a few users and events (batch_date = event UTC date), and campaigns."""
    rng = np.random.default_rng(seed)
    n = len(CATEGORIES) * PER_CATEGORY
    item_ids = np.arange(1, n + 1, dtype=np.int64)
    categories = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "category": categories,
            "price": [9.99 + i % 7 for i in range(n)],
            "title": [f"item {i}" for i in item_ids],
        }
    )
    images = pd.DataFrame(
        {
            "item_id": item_ids,
            "image": [png(shape(c, rng)) for c in categories],
            "width": SIZE,
            "height": SIZE,
            "source": "test-shapes",
        }
    )
    users = pd.DataFrame({"user_id": [1, 2, 3], "signup_date": [DAY - dt.timedelta(days=100)] * 3})
    stamps = [pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(hours=h) for h in range(1, 31)]
    events = pd.DataFrame(
        {
            "batch_date": [s.date() for s in stamps],
            "event_id": np.arange(1, 31),
            "user_id": [1 + i % 3 for i in range(30)],
            # Sneakers are what the audience looks at most, then Trousers: the whole-audience ranking.
            "item_id": [2 if i % 3 else 3 for i in range(30)],
            "event_type": "view",
            "event_ts": stamps,
            "price": 9.99,
            "quantity": 1,
        }
    )
    with engine.begin() as conn:
        copy_frames(conn, "items", items)
        copy_frames(conn, "item_images", images)
        copy_frames(conn, "users", users)
        copy_frames(conn, "events", events)
        copy_frames(conn, "campaigns", campaigns if campaigns is not None else default_campaigns())


def default_campaigns() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign_id": [1, 2],
            "name": ["Summer", "Later"],
            "start_date": [DAY - dt.timedelta(days=5), DAY + dt.timedelta(days=30)],
            "end_date": [DAY + dt.timedelta(days=5), DAY + dt.timedelta(days=40)],
            "categories": [list(CATEGORIES), ["Bags"]],
            "target_segments": [[], []],
            "headline_template": ["{discount}% off {category} for {segment}", "{category} from ${price}"],
            "discount_pct": [20, None],
        }
    )


def creatives(engine: Engine, day: dt.date) -> pd.DataFrame:
    query = """SELECT campaign_id, segment_id, category, rank, banner_size, image, headline, scores, status,
                      model_version
               FROM ad_creatives WHERE campaign_date = :d
               ORDER BY campaign_id, segment_id, category, rank, banner_size"""
    with engine.connect() as conn:
        frame = pd.read_sql_query(sa.text(query), conn, params={"d": day})
    frame["image"] = frame["image"].map(bytes)
    return frame

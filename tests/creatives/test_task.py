"""The creative task end to end on real PostgreSQL: training, banners, segments, campaign windows."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import torch
from PIL import Image
from sqlalchemy.engine import Engine

from pipelines import modeltask
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.creatives.task import CreativesRecipe
from pipelines.errors import DataError
from pipelines.registry import champion
from pipelines.settings import Settings
from pipelines.warehouse.partitions import copy_frames
from tests.creatives.store import CATEGORIES, DAY, TINY, creatives, default_campaigns, make_store

pytestmark = pytest.mark.integration


def run(
    engine: Engine, day: dt.date, settings: Settings, config: CreativesConfig, *, force_promote: bool = False
) -> dict:
    recipe = CreativesRecipe(config)
    summary = modeltask.run(recipe, engine, day, settings, device=torch.device("cpu"), force_promote=force_promote)
    return summary | summary["outputs"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, device="cpu")


def test_run_trains_a_champion_and_writes_banners_for_live_campaigns(engine: Engine, settings: Settings) -> None:
    make_store(engine)
    summary = run(engine, DAY, settings, TINY)
    json.dumps(summary)  # small and JSON-serialisable, for XCom and the task log

    training = summary["training"]
    assert summary["trained"] and summary["candidate_status"] == "promoted"
    assert training["images"] == 90 and training["categories"] == 3
    for key in (
        "conditional_accuracy",
        "frechet",
        "kid",
        "precision",
        "recall",
        "floor_frechet",
        "classifier_accuracy",
    ):
        assert key in summary["metrics"]
    assert summary["served_by"] == summary["candidate"] == champion(engine, MODEL_NAME).version

    rows = creatives(engine, DAY)
    # Only campaign 1 is live; no segments yet: whole audience, top 2 categories x top 2 x 2 sizes.
    assert set(rows["campaign_id"]) == {1}
    assert set(rows["segment_id"]) == {-1}
    assert set(rows["category"]) == {"Sneakers", "Trousers"}  # the audience's most viewed, in the campaign
    assert len(rows) == 2 * TINY.top_k * 2
    assert set(rows["status"]) == {"pending_review"}
    assert set(rows["model_version"]) == {summary["served_by"]}
    assert set(rows["headline"]) == {"20% off Sneakers for everyone", "20% off Trousers for everyone"}
    for row in rows.itertuples():
        image = Image.open(io.BytesIO(row.image))
        assert f"{image.width}x{image.height}" == row.banner_size
        assert {"confidence", "realism", "score", "diversity"} <= set(row.scores)
    assert summary["campaigns"]["1"]["per_segment"] == {"-1": 8}
    sheet = Path(summary["campaigns"]["1"]["contact_sheet"])
    assert sheet.exists() and sheet.parent.parent.name == DAY.isoformat()
    assert Path(champion(engine, MODEL_NAME).artifact_path).with_suffix(".png").exists()  # training curves


def test_dates_outside_a_campaign_window_write_nothing(engine: Engine, settings: Settings) -> None:
    make_store(engine)
    run(engine, DAY, settings, TINY)
    outside = DAY + dt.timedelta(days=10)  # campaign 1 ended, campaign 2 not started
    summary = run(engine, outside, settings, TINY)
    assert summary["live_campaigns"] == []
    assert creatives(engine, outside).empty
    assert not creatives(engine, DAY).empty  # the past date's creatives are untouched


def test_segments_get_their_favourite_categories_and_missing_ones_fall_back(engine: Engine, settings: Settings) -> None:
    campaigns = default_campaigns()
    campaigns.loc[0, "target_segments"] = [0, 1]
    extra = campaigns.iloc[[0]].assign(campaign_id=3, target_segments=[[5]])  # segment 5 does not exist
    make_store(engine, campaigns=pd.concat([campaigns, extra], ignore_index=True))
    segments = pd.DataFrame(
        {
            "as_of_date": [DAY, DAY],
            "segment_id": [0, 1],
            "label": ["bag lovers", "runners"],
            "size": [10, 20],
            "centroid": [[0.0, 1.0], [1.0, 0.0]],
            "top_categories": [
                json.dumps([{"category": "Bags", "affinity": 0.7}, {"category": "Trousers", "affinity": 0.2}]),
                json.dumps([{"category": "Sneakers", "affinity": 0.9}, {"category": "Bags", "affinity": 0.05}]),
            ],
            "model_version": "vae-test",
        }
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE segments_p20260610 PARTITION OF segments FOR VALUES FROM ('2026-06-10') TO ('2026-06-11')"
        )
        copy_frames(conn, "segments", segments)
    summary = run(engine, DAY, settings, TINY)
    rows = creatives(engine, DAY)
    chosen = rows.groupby(["campaign_id", "segment_id"])["category"].agg(lambda c: sorted(set(c))).to_dict()
    assert chosen == {(1, 0): ["Bags", "Trousers"], (1, 1): ["Bags", "Sneakers"], (3, -1): ["Sneakers", "Trousers"]}
    assert set(rows[rows.segment_id == 1]["headline"]) == {"20% off Sneakers for runners", "20% off Bags for runners"}
    assert summary["campaigns"]["3"]["missing_segments"] == [5]
    assert set(CATEGORIES) >= set(rows["category"])


def test_a_malformed_headline_template_fails_before_training(engine: Engine, settings: Settings) -> None:
    campaigns = default_campaigns()
    campaigns.loc[0, "headline_template"] = "{colour} deals"
    make_store(engine, campaigns=campaigns)
    with pytest.raises(DataError, match="campaign 1: headline_template uses unknown field"):
        run(engine, DAY, settings, TINY)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM model_runs")).scalar() == 0

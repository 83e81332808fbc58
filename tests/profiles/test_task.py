"""The profile task end to end on a tiny store in a real PostgreSQL: registry, profiles, segments, reruns, drift."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy.engine import Engine

from pipelines import modeltask, registry
from pipelines.profiles import MODEL_NAME, ProfileConfig
from pipelines.profiles.task import ProfileRecipe
from pipelines.settings import Settings
from pipelines.warehouse.reads import read_frame

from .store import CATEGORIES, add_events, events_frame, load_store

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 31)
CONFIG = ProfileConfig(
    hidden_dim=32, latent_dim=8, epochs=25, batch_size=64, learning_rate=3e-3, heldout_fraction=0.25,
    eval_min_items=4, segments=4, top_categories=2, ease_lambda=10.0,
)  # fmt: skip
N_USERS = 240
ACTIVE = np.arange(1, 221)  # users 221-240 never buy anything


def run(
    engine: Engine, day: dt.date, settings: Settings, config: ProfileConfig, *, force_promote: bool = False
) -> dict:
    recipe = ProfileRecipe(config)
    return modeltask.run(recipe, engine, day, settings, device=torch.device("cpu"), force_promote=force_promote)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, device="cpu")


@pytest.fixture
def store(engine: Engine) -> Engine:
    load_store(engine, N_USERS, events_frame(ACTIVE, DAY - dt.timedelta(days=29), 30, seed=0))
    return engine


def _profiles(engine: Engine, day: dt.date) -> pd.DataFrame:
    return read_frame(
        engine,
        "SELECT user_id, embedding::text AS embedding, segment_id, top_categories, model_version"
        " FROM user_profiles WHERE as_of_date = :d ORDER BY user_id",
        {"d": day},
    )


def _segments(engine: Engine, day: dt.date) -> pd.DataFrame:
    return read_frame(engine, "SELECT * FROM segments WHERE as_of_date = :d ORDER BY segment_id", {"d": day})


def test_run_writes_profiles_and_segments_and_registers_a_champion(store: Engine, settings: Settings) -> None:
    summary = run(store, DAY, settings, CONFIG)
    training, outputs = summary["training"], summary["outputs"]
    assert training["users"] == len(ACTIVE) and training["items"] == 48
    assert outputs["users_without_events"] == N_USERS - len(ACTIVE)
    assert outputs["profiles_written"] == len(ACTIVE) and outputs["segments_written"] == 4
    assert summary["candidate_status"] == "promoted" and summary["parent"] is None
    json.dumps(summary)  # what the Airflow task returns must serialise

    metrics = summary["metrics"]
    # Tastes are strong in this store: the VAE must beat popularity clearly.
    assert metrics["ndcg@100"] > 1.3 * metrics["popularity_ndcg@100"]
    assert "ease_ndcg@100" in metrics

    champion = registry.champion(store, MODEL_NAME)
    assert champion is not None and champion.version == summary["candidate"] == summary["served_by"]
    assert champion.protocol["eval_users"] == training["eval_users"] > 0
    assert {"ndcg@100", "recall@20", "popularity_ndcg@100", "ease_ndcg@100"} <= set(champion.metrics)
    assert Path(champion.artifact_path).with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(champion.artifact_path).parent == registry.artifact_dir(settings.artifacts, MODEL_NAME, DAY)

    profiles = _profiles(store, DAY)
    assert profiles["user_id"].tolist() == ACTIVE.tolist()
    assert len(profiles["embedding"].iloc[0].strip("[]{}").split(",")) == CONFIG.latent_dim
    assert (profiles["model_version"] == champion.version).all()
    first_top = profiles["top_categories"].iloc[0]
    assert len(first_top) == 2 and first_top[0]["category"] in CATEGORIES
    # A user's top category is, for most users, the favourite category the store gave them.
    favourite = [CATEGORIES[u % 4] for u in profiles["user_id"]]
    top = [t[0]["category"] for t in profiles["top_categories"]]
    assert np.mean(np.array(top) == np.array(favourite)) > 0.8

    segments = _segments(store, DAY)
    assert segments["size"].sum() == len(ACTIVE)
    assert profiles.groupby("segment_id").size().to_dict() == dict(
        zip(segments["segment_id"], segments["size"], strict=True)
    )
    assert all(" & " in label for label in segments["label"])
    assert all(d["previous_date"] == str(DAY - dt.timedelta(days=1)) for d in segments["drift"])
    assert len(segments["centroid"].iloc[0]) == CONFIG.latent_dim


def test_rerun_of_the_same_date_is_identical(store: Engine, settings: Settings) -> None:
    first = run(store, DAY, settings, CONFIG)
    profiles, segments = _profiles(store, DAY), _segments(store, DAY)
    second = run(store, DAY, settings, CONFIG)
    assert second["candidate"] == first["candidate"] and second["decision"] == first["decision"]
    pd.testing.assert_frame_equal(_profiles(store, DAY), profiles)
    pd.testing.assert_frame_equal(_segments(store, DAY), segments)
    runs = read_frame(store, "SELECT count(*) AS n FROM model_runs WHERE model_name = :m", {"m": MODEL_NAME})
    assert runs["n"].iloc[0] == 1


def test_next_day_keeps_segment_ids_and_reports_drift(store: Engine, settings: Settings) -> None:
    run(store, DAY, settings, CONFIG)
    day2 = DAY + dt.timedelta(days=1)
    # A few more events of the same tastes, and two users who shop for the first time.
    add_events(
        store,
        events_frame(np.array([*ACTIVE[:40], 221, 222]), day2, 1, seed=5, events_per_user=6, first_event_id=10**6),
    )
    summary = run(store, day2, settings, CONFIG)
    before, after = _profiles(store, DAY), _profiles(store, day2)
    outputs = summary["outputs"]
    assert summary["parent"] == registry.champion_of(store, MODEL_NAME, DAY).version
    assert outputs["profiles_written"] == len(ACTIVE) + 2
    assert outputs["users_without_events"] == N_USERS - len(ACTIVE) - 2
    assert outputs["users_new_since_yesterday"] == 2
    assert {221, 222} <= set(after["user_id"])
    kept = before.merge(after, on="user_id", suffixes=("_before", "_after"))
    assert (kept["segment_id_before"] == kept["segment_id_after"]).mean() > 0.9
    segments = _segments(store, day2)
    assert set(segments["segment_id"]) == set(_segments(store, DAY)["segment_id"])
    for drift in segments["drift"]:
        assert drift["previous_date"] == DAY.isoformat()
        assert drift["psi"] is not None and drift["psi"] >= 0
        assert isinstance(drift["size_change"], int)


def test_a_worse_candidate_is_rejected_and_the_champion_writes_the_outputs(store: Engine, settings: Settings) -> None:
    first = run(store, DAY, settings, CONFIG)
    day2 = DAY + dt.timedelta(days=1)
    add_events(store, events_frame(ACTIVE[:30], day2, 1, seed=6, events_per_user=4, first_event_id=10**6))
    # A candidate that barely trained is clearly worse than the champion re-scored on the same split.
    weak = dataclasses.replace(CONFIG, epochs=1, learning_rate=1e-6)
    second = run(store, day2, settings, weak)
    assert second["candidate_status"] == "rejected"
    assert second["served_by"] == second["parent"] == first["candidate"]
    # The parent was re-scored on the candidate's split.
    assert second["parent_metrics"]["ndcg@100"] > second["metrics"]["ndcg@100"] + CONFIG.promotion_tolerance
    assert set(_profiles(store, day2)["model_version"]) == {first["candidate"]}
    forced = run(store, day2, settings, weak, force_promote=True)
    assert forced["candidate_status"] == "promoted"
    assert set(_profiles(store, day2)["model_version"]) == {forced["candidate"]}


def test_no_events_is_a_data_error_and_writes_nothing(engine: Engine, settings: Settings) -> None:
    from pipelines.errors import DataError

    load_store(engine, 10, events_frame(np.arange(1, 11), DAY - dt.timedelta(days=400), 5, seed=0))
    with pytest.raises(DataError, match="no events"):
        run(engine, DAY, settings, CONFIG)
    assert registry.champion(engine, MODEL_NAME) is None

"""`refresh_recommendations` end to end through the model-task lifecycle, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Engine

from pipelines import modeltask, registry
from pipelines.errors import DataError
from pipelines.recs import MODEL_NAME, RecsConfig
from pipelines.recs.task import RecsRecipe
from pipelines.registry import ArtifactIntegrityError
from pipelines.settings import Settings
from pipelines.warehouse.partitions import copy_frames
from tests.recs.store import last_day, write_events, write_segment, write_store

pytestmark = pytest.mark.integration

TINY = RecsConfig(
    hidden=32,
    blocks=1,
    heads=1,
    dropout=0.1,
    max_len=10,
    batch_size=32,
    learning_rate=0.01,
    max_epochs=12,
    patience=3,
    top_k=5,
    min_train_users=10,
    device="cpu",
)


def run(engine: Engine, day: dt.date, settings: Settings, config: RecsConfig, *, force_promote: bool = False) -> dict:
    recipe = RecsRecipe(config)
    return modeltask.run(recipe, engine, day, settings, device=torch.device("cpu"), force_promote=force_promote)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, device="cpu")


def _recs(engine: Engine, day: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            sa.text("SELECT * FROM recommendations WHERE as_of_date = :d ORDER BY user_id, rank"),
            conn,
            params={"d": day},
        )


def test_run_beats_popularity_excludes_bought_items_and_reruns_identically(engine: Engine, settings: Settings) -> None:
    events = write_store(engine, extra_users=3)
    day = last_day(events)
    summary = run(engine, day, settings, TINY)

    metrics = summary["metrics"]
    assert summary["trained"] and summary["candidate_status"] == "promoted"
    assert metrics["test_ndcg@10"] > metrics["popularity_test_ndcg@10"] + 0.3  # the planted chain is learned
    assert metrics["valid_ndcg@10"] > metrics["popularity_valid_ndcg@10"] + 0.3

    recs = _recs(engine, day)
    assert summary["outputs"]["rows_written"] == len(recs) and summary["outputs"]["users"] == 123
    assert set(recs.loc[recs["user_id"] > 120, "source"]) == {"global_popularity"}  # no history: popularity
    model_rows = recs[recs["source"] == "model"]
    assert model_rows.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    bought = set(zip(events["user_id"], events["item_id"], strict=True))
    assert not any((u, i) in bought for u, i in zip(recs["user_id"], recs["item_id"], strict=True))
    # The chain: for a user whose last purchase is item i, the next item (i + 10 here) comes first when unbought.
    last = events.groupby("user_id")["item_id"].last()
    top1 = model_rows[model_rows["rank"] == 1].set_index("user_id")["item_id"]
    nxt = (last % 240) + 10
    unbought = [u for u in top1.index if (u, nxt[u]) not in bought]
    assert np.mean([top1[u] == nxt[u] for u in unbought]) > 0.8

    artifact = Path(registry.champion(engine, MODEL_NAME).artifact_path)
    assert artifact.with_suffix(".png").exists()

    again = run(engine, day, settings, TINY)
    assert again["candidate"] == summary["candidate"]  # same weights, same hash, same version
    pd.testing.assert_frame_equal(_recs(engine, day), recs)


def test_promotion_rule_keeps_a_better_champion_unless_forced(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    day = last_day(events)
    first = run(engine, day - dt.timedelta(days=1), settings, TINY)
    assert first["candidate_status"] == "promoted"

    weak = RecsConfig(**{**TINY.__dict__, "max_epochs": 1, "learning_rate": 1e-5, "refit": False})
    second = run(engine, day, settings, weak)
    assert second["candidate_status"] == "rejected"
    assert second["parent"] == second["served_by"] == first["candidate"]  # the champion of the day before serves
    assert set(_recs(engine, day)["model_version"]) == {first["candidate"]}

    forced = run(engine, day, settings, weak, force_promote=True)
    assert forced["candidate_status"] == "promoted" and forced["served_by"] == forced["candidate"]


def test_warm_start_continues_from_the_champion_with_new_items(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    day = last_day(events)
    run(engine, day - dt.timedelta(days=2), settings, TINY)
    newcomer = pd.DataFrame({"item_id": [9990], "category": ["cat0"], "price": [1.0], "title": ["new"]})
    ts = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    write_events(
        engine,
        pd.DataFrame({"user_id": [1, 2], "item_id": [9990, 9990], "event_type": "purchase", "event_ts": ts}),
        items=newcomer,
    )
    summary = run(engine, day, settings, RecsConfig(**{**TINY.__dict__, "warm_start": True}), force_promote=True)
    assert summary["training"]["items"] == 25 and summary["candidate_status"] == "promoted"


def test_tampered_champion_artifact_is_refused(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    day = last_day(events)
    run(engine, day, settings, TINY)
    path = Path(registry.champion(engine, MODEL_NAME).artifact_path)
    path.write_bytes(path.read_bytes() + b"tampered")
    before = _recs(engine, day)
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        run(engine, day + dt.timedelta(days=1), settings, TINY)
    pd.testing.assert_frame_equal(_recs(engine, day), before)


def test_empty_store_is_a_clear_error_and_writes_nothing(engine: Engine, settings: Settings) -> None:
    with pytest.raises(DataError, match="no cart/purchase events"):
        run(engine, dt.date(2026, 3, 5), settings, TINY)
    assert _recs(engine, dt.date(2026, 3, 5)).empty


def test_empty_day_trains_on_history_and_still_writes(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    quiet_day = last_day(events) + dt.timedelta(days=3)
    summary = run(engine, quiet_day, settings, TINY)
    assert summary["outputs"]["events_on_day"] == 0 and summary["trained"]
    assert summary["outputs"]["rows_written"] == len(_recs(engine, quiet_day)) > 0


def test_one_item_store_serves_popularity_without_training(engine: Engine, settings: Settings) -> None:
    events = write_store(engine, n_users=20, n_items=1)
    day = last_day(events)
    summary = run(engine, day, settings, TINY)
    assert not summary["trained"] and "at least 2" in summary["reason"]
    recs = _recs(engine, day)
    assert set(recs["source"]) == {"global_popularity"} and len(recs) == 20


def test_unknown_items_are_ignored_and_one_event_users_get_model_recs(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    day = last_day(events)
    ts = dt.datetime.combine(day, dt.time(23), tzinfo=dt.UTC)
    with engine.begin() as conn:
        copy_frames(conn, "users", pd.DataFrame({"user_id": [500], "signup_date": [day]}))
    write_events(
        engine,
        pd.DataFrame({"user_id": [1, 500], "item_id": [123456, 10], "event_type": "purchase", "event_ts": ts}),
    )
    summary = run(engine, day, settings, TINY)
    assert summary["outputs"]["unknown_item_events"] == 1
    recs = _recs(engine, day)
    assert 123456 not in set(recs["item_id"])
    single = recs[recs["user_id"] == 500]
    assert set(single["source"]) == {"model"} and 10 not in set(single["item_id"]) and len(single) == 5


def test_segment_popularity_for_users_without_history(engine: Engine, settings: Settings) -> None:
    events = write_store(engine, extra_users=2)
    day = last_day(events)
    write_segment(engine, day, [1, 2, 121])
    run(engine, day, settings, TINY)
    recs = _recs(engine, day)
    assert set(recs.loc[recs["user_id"] == 121, "source"]) == {"segment_popularity"}
    assert set(recs.loc[recs["user_id"] == 122, "source"]) == {"global_popularity"}


def test_items_gone_from_the_catalogue_are_never_recommended(engine: Engine, settings: Settings) -> None:
    events = write_store(engine)
    day = last_day(events)
    run(engine, day - dt.timedelta(days=1), settings, TINY)
    popular = int(events["item_id"].value_counts().index[0])
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM items WHERE item_id = :i"), {"i": popular})
    summary = run(engine, day, settings, TINY)
    assert summary["training"]["items"] == 24  # the mapping keeps the row (stable ids) ...
    assert popular not in set(_recs(engine, day)["item_id"])  # ... but the item is not offered any more

"""The one checkpoint schema (a round trip; champions saved in the layouts before it still load), and the
sharded lifecycle: shards give the one-shard rows and publish only when all are staged."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from pipelines import modeltask, registry
from pipelines.creatives.bundle import load_bundle, make_payload
from pipelines.creatives.classifier import ClassifierSpec, ImageClassifier
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.task import CreativesRecipe
from pipelines.creatives.train import new_state
from pipelines.modeltask import Checkpoint
from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.model import MultVAE, VAEConfig
from pipelines.profiles.task import ProfileRecipe, assign
from pipelines.recs.config import RecsConfig
from pipelines.recs.model import SASRec, SASRecConfig
from pipelines.recs.task import RecsRecipe
from pipelines.registry import load_artifact, save_artifact
from pipelines.settings import Settings
from pipelines.warehouse.partitions import ShardError
from tests.creatives.store import TINY
from tests.profiles.store import events_frame, load_store
from tests.profiles.test_task import ACTIVE, CONFIG, DAY, N_USERS
from tests.recs.store import last_day, write_store
from tests.recs.test_task import TINY as TINY_RECS

CPU = torch.device("cpu")


def _through_disk(payload: dict, tmp_path: Path) -> Checkpoint:
    path, sha = save_artifact(payload, tmp_path)
    return Checkpoint.from_payload(load_artifact(path, sha))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_the_schema_round_trips_through_an_artifact(tmp_path: Path) -> None:
    config = RecsConfig(hidden=8, max_len=5)
    model = SASRec(SASRecConfig.from_task_config(config, 7))
    checkpoint = Checkpoint(
        model.state_dict(), model.cfg.to_dict(), dataclasses.asdict(config), "2026-06-30", {"ndcg@10": 0.1},
        {"item_ids": torch.arange(1, 8)},
    )  # fmt: skip
    loaded = _through_disk(checkpoint.payload(), tmp_path)
    assert loaded.as_of_date == "2026-06-30" and loaded.metrics == {"ndcg@10": 0.1}
    assert loaded.train_config["exclude_event_types"] == ["purchase"]  # tuples are stored as lists
    rebuilt = RecsRecipe(config).load(loaded)
    assert _same_weights(rebuilt.model, model) and rebuilt.vocab.item_ids.tolist() == list(range(1, 8))


def test_a_recommender_saved_before_the_schema_still_loads(tmp_path: Path) -> None:
    config = RecsConfig(hidden=8, max_len=5)
    model = SASRec(SASRecConfig.from_task_config(config, 4))
    old = {
        "state_dict": model.state_dict(),
        "model_config": model.cfg.to_dict(),
        "train_config": {"negatives": 0, "weight_decay": 0.0},  # knobs that no longer exist
        "item_ids": torch.tensor([10, 11, 12, 13]),
        "as_of_date": "2026-06-01",
        "best_epoch": 3,
        "metrics": {"valid_ndcg@10": 0.2},
    }
    rebuilt = RecsRecipe(config).load(_through_disk(old, tmp_path))
    assert _same_weights(rebuilt.model, model) and rebuilt.vocab.item_ids.tolist() == [10, 11, 12, 13]


def test_a_profile_vae_saved_before_the_schema_still_loads_and_segments(tmp_path: Path) -> None:
    config = ProfileConfig(hidden_dim=8, latent_dim=4, segments=3)
    vae = MultVAE(VAEConfig.from_task_config(config, 6))
    old = {
        "model_state": vae.state_dict(),
        "vae_config": vae.config.to_dict(),
        "item_ids": torch.arange(6),
        "config": dataclasses.asdict(config),
        "as_of_date": "2026-06-01",
        "epochs": 2,
        "metrics": {"ndcg_at_100": 0.3},
    }
    model = ProfileRecipe(config).load(_through_disk(old, tmp_path))
    assert _same_weights(model.vae, vae) and model.centroids is None  # saved before segments were
    embeddings = np.random.default_rng(0).normal(size=(20, 4))
    first, again = assign(model, embeddings, config, "v-old"), assign(model, embeddings, config, "v-old")
    assert len(first.segment_ids) == 3 and np.array_equal(first.assignment, again.assignment)


def test_a_generator_saved_before_the_schema_still_loads(tmp_path: Path) -> None:
    state = new_state(GanSpec.from_task_config(TINY, 3), TINY, seed=1, device=CPU)
    classifier = ImageClassifier(ClassifierSpec(3, TINY.image_size, TINY.image_channels, TINY.classifier_channels))
    old = make_payload(
        state.payload(), classifier, ("Bags", "Sneakers", "Trousers"), as_of="2026-06-01", data_fingerprint="fp",
        metrics={"frechet_ratio": 2.0}, train_config=dataclasses.asdict(TINY),
    )  # fmt: skip
    model = CreativesRecipe(TINY).load(_through_disk(old, tmp_path))
    bundle = load_bundle(model.payload, "v-old", CPU)
    assert bundle.classes == ("Bags", "Sneakers", "Trousers")
    assert _same_weights(bundle.generator, state.ema)


# Sharded scoring through the lifecycle, on a real PostgreSQL with tiny trained models.


def _checksum(engine, table: str, day, order: str) -> tuple[int, str]:
    """Rows and an ordered checksum of one date's outputs."""
    with engine.connect() as conn:
        query = f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t WHERE as_of_date = :d"
        rows, digest = conn.execute(sa.text(query), {"d": day}).one()
    return rows, digest


def _written_at(engine, day):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT written_at FROM served_lineage WHERE as_of_date = :d"), {"d": day}).all()


@pytest.mark.integration
def test_shards_give_the_one_shard_rows_and_publish_only_when_all_are_staged(engine, tmp_path: Path) -> None:

    day = last_day(write_store(engine, extra_users=3))
    config = dataclasses.replace(TINY_RECS, infer_batch_users=7)  # many batches, composed differently per shard
    one = Settings(state_dir=tmp_path, device="cpu")
    modeltask.run(RecsRecipe(config), engine, day, one, device=CPU)
    single = _checksum(engine, "recommendations", day, "user_id, rank")
    lineage = _written_at(engine, day)

    # The DAG's way: train (here: serve with today's champion), then each shard and the publish step on
    # their own, each reading the data and loading the served model from the registry again.
    three = dataclasses.replace(one, score_shards=3)
    plan = modeltask.train(RecsRecipe(config), engine, day, three, device=CPU, policy="current_champion")
    plan = modeltask.Plan.from_dict(plan.to_dict())  # as it travels between tasks
    assert plan.shards == 3 and plan.serving is not None
    done = [modeltask.score_shard(RecsRecipe(config), engine, three, plan, i, device=CPU) for i in (2, 0)]
    with pytest.raises(ShardError, match=r"shard\(s\) \[1\] of 3"):
        modeltask.publish(RecsRecipe(config), engine, three, plan, done, device=CPU)
    assert _checksum(engine, "recommendations", day, "user_id, rank") == single  # readers keep the old rows
    assert _written_at(engine, day) == lineage  # and the old lineage: nothing of the publish committed
    done.append(modeltask.score_shard(RecsRecipe(config), engine, three, plan, 1, device=CPU))
    assert sum(s["users"] for s in done) == 123 and all(s["users"] > 0 for s in done)
    summary = modeltask.publish(RecsRecipe(config), engine, three, plan, done, device=CPU)
    assert summary["outputs"]["shards"] == 3 and summary["outputs"]["users"] == 123
    assert _checksum(engine, "recommendations", day, "user_id, rank") == single
    assert _written_at(engine, day) != lineage


@pytest.mark.integration
def test_a_shard_refuses_a_served_model_whose_artifact_changed(engine, tmp_path: Path) -> None:

    day = last_day(write_store(engine))
    settings = Settings(state_dir=tmp_path, device="cpu")
    plan = modeltask.train(RecsRecipe(TINY_RECS), engine, day, settings, device=CPU)
    run = registry.get_run(engine, plan.model, plan.serving)
    Path(run.artifact_path).write_bytes(Path(run.artifact_path).read_bytes() + b"\0")
    with pytest.raises(registry.ArtifactIntegrityError):
        modeltask.score_shard(RecsRecipe(TINY_RECS), engine, settings, plan, 0, device=CPU)


@pytest.mark.integration
def test_profile_shards_give_the_one_shard_profiles_and_segments(engine, tmp_path: Path) -> None:

    torch.set_num_threads(1)
    load_store(engine, N_USERS, events_frame(ACTIVE, DAY - dt.timedelta(days=29), 30, seed=0))
    one = Settings(state_dir=tmp_path, device="cpu")
    config = dataclasses.replace(CONFIG, epochs=3)
    modeltask.run(ProfileRecipe(config), engine, DAY, one, device=CPU)
    expected = {t: _checksum(engine, t, DAY, o) for t, o in (("user_profiles", "user_id"), ("segments", "segment_id"))}
    four = dataclasses.replace(one, score_shards=4)
    summary = modeltask.run(ProfileRecipe(config), engine, DAY, four, device=CPU, policy="current_champion")
    assert summary["outputs"]["shards"] == 4
    assert {t: _checksum(engine, t, DAY, o) for t, o in (("user_profiles", "user_id"), ("segments", "segment_id"))} == (
        expected
    )

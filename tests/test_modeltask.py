"""The one checkpoint schema: a round trip, and champions saved in the layouts before it still load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

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
from tests.creatives.store import TINY

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

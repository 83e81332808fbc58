"""The auxiliary class loss: a class head on the discriminator that learns real categories and steers fakes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from pipelines.creatives.candidate import _warm_start
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.creatives.data import ImageSet
from pipelines.creatives.gan import Discriminator, GanSpec
from pipelines.creatives.task import GanModel
from pipelines.creatives.train import GanState, new_state, run_key, train_gan
from pipelines.errors import ConfigError
from pipelines.modeltask import Served
from pipelines.registry import ModelRun
from tests.creatives.store import CATEGORIES, DAY, SIZE, TINY, shape

CPU = torch.device("cpu")
SPEC = GanSpec.from_task_config(
    CreativesConfig(
        image_size=SIZE, z_dim=8, g_channels=8, d_channels=8, minibatch_stddev=False, class_loss_weight=0.1
    ),
    n_classes=3,
)
WITHOUT_HEAD = dataclasses.replace(TINY, class_loss_weight=0.0)


def _shapes(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test store's three categories (ring, bar, legs): images [n, 1, 8, 8] in [-1, 1], labels [n]."""
    rng = np.random.default_rng(0)
    labels = torch.arange(len(CATEGORIES) * per_class) % len(CATEGORIES)
    pixels = np.stack([shape(CATEGORIES[int(c)], rng) for c in labels])  # [n, 8, 8] uint8
    return torch.from_numpy(pixels).float().div(127.5).sub(1.0)[:, None], labels


def test_the_class_head_is_built_only_when_the_spec_asks_and_is_spectrally_normalised() -> None:
    torch.manual_seed(0)
    d = Discriminator(SPEC).eval()
    assert parametrize.is_parametrized(d.classify, "weight")
    x, y = torch.randn(5, 1, SIZE, SIZE), torch.tensor([0, 1, 2, 0, 1])
    scores, classes = d.scores_and_classes(x, y)
    assert scores.shape == (5,) and classes.shape == (5, 3)
    assert torch.allclose(scores, d(x, y))  # the realism score is the projection head's, head or not

    older = {k: v for k, v in SPEC.to_dict().items() if k != "class_head"}  # an artifact saved before the head
    plain = Discriminator(GanSpec(**older))
    assert plain.classify is None
    assert not any(k.startswith("classify") for k in plain.state_dict())
    with pytest.raises(ValueError, match="class_head"):
        plain.scores_and_classes(x, y)


def test_the_config_turns_the_head_on_and_bad_weights_or_a_headless_pair_are_refused(tmp_path: Path) -> None:
    assert not GanSpec.from_task_config(WITHOUT_HEAD, 3).class_head
    assert GanSpec.from_task_config(dataclasses.replace(TINY, class_loss_weight=0.5), 3).class_head
    with pytest.raises(ConfigError, match="class_loss_weight"):
        CreativesConfig(class_loss_weight=-0.1)
    headless = new_state(GanSpec.from_task_config(WITHOUT_HEAD, 3), WITHOUT_HEAD, seed=1, device=CPU)
    images, labels = _shapes(per_class=4)
    with pytest.raises(ConfigError, match="no class head"):
        train_gan(
            headless,
            images,
            labels,
            dataclasses.replace(TINY, class_loss_weight=0.5),
            seed=1,
            device=CPU,
            checkpoint=tmp_path / "c.pt",
            key="k",
            steps=1,
        )
    keys = {run_key(SPEC, dataclasses.replace(TINY, class_loss_weight=w), 1, "fp", None) for w in (0.5, 1.0)}
    assert len(keys) == 2  # a checkpoint trained with one weight is not resumed with another


def test_the_head_learns_real_categories_and_the_generator_is_pulled_towards_them(tmp_path: Path) -> None:
    images, labels = _shapes(per_class=32)
    config = dataclasses.replace(TINY, class_loss_weight=1.0, consistency_weight=0.0, diffaugment="")
    state = new_state(SPEC, config, seed=5, device=CPU)
    train_gan(state, images, labels, config, seed=5, device=CPU, checkpoint=tmp_path / "c.pt", key="k", steps=120)

    chance = math.log(3)  # cross-entropy of a head that cannot tell the three categories apart
    real, fake = state.history["class_real"], state.history["class_fake"]  # one point per 2 steps
    assert min(real[:3]) > 0.8 * chance
    assert np.mean(real[-5:]) < 0.3 * chance  # the head tells a ring from a bar from two legs on real images
    assert np.mean(fake[-5:]) < 0.6 * chance  # and reads the generator's products as the class drawn for
    assert all(math.isfinite(v) for v in state.history["d_loss"] + state.history["g_loss"])


def test_a_champion_without_the_head_warm_starts_a_run_with_one_all_but_the_head() -> None:
    images, labels = _shapes(per_class=4)
    data = ImageSet(images, labels, CATEGORIES, tuple(range(len(labels))), "fp")
    trained = new_state(GanSpec.from_task_config(WITHOUT_HEAD, 3), WITHOUT_HEAD, seed=2, device=CPU)
    older = trained.payload() | {"classes": list(CATEGORIES)}
    older["spec"] = {k: v for k, v in older["spec"].items() if k != "class_head"}  # saved before the field
    run = ModelRun(MODEL_NAME, "v1", DAY, "promoted", {}, {}, {}, None, None)

    def start(config: CreativesConfig, payload: dict) -> tuple[GanState, str | None]:
        state = new_state(GanSpec.from_task_config(config, 3), config, seed=1, device=CPU)
        parent = Served(run, GanModel(payload), None)  # type: ignore[arg-type]
        return state, _warm_start(None, DAY, state, parent, data, config)[0]  # type: ignore[arg-type]

    same, version = start(WITHOUT_HEAD, older)
    assert version == "v1"
    assert same.discriminator.state_dict().keys() == trained.discriminator.state_dict().keys()

    with_head, version = start(dataclasses.replace(TINY, class_loss_weight=0.5), older)
    assert version == "v1"
    for name, value in trained.generator.state_dict().items():
        assert torch.equal(with_head.generator.state_dict()[name], value)
    kept = with_head.discriminator.state_dict()
    for name, value in trained.discriminator.state_dict().items():
        assert torch.equal(kept[name], value)
    assert any(k.startswith("classify.") for k in kept)  # the head is there, freshly initialised

    wider = older | {"spec": older["spec"] | {"d_channels": 16}}
    assert start(WITHOUT_HEAD, wider)[1] is None  # another model size: cold start

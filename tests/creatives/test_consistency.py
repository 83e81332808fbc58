"""Consistency regularisation: small shifts that keep the background, and a penalty on critics that move."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.consistency import consistency_penalty, shift
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.train import new_state, run_key, train_gan
from pipelines.errors import ConfigError
from tests.creatives.store import TINY


def _squares(n: int, background: float) -> torch.Tensor:
    """n images 1 x 16 x 16: a 4 x 4 square of the opposite shade in the middle (rows and columns 6-9)."""
    x = torch.full((n, 1, 16, 16), background)
    x[:, :, 6:10, 6:10] = -background
    return x


def _centre(x: torch.Tensor, shade: float) -> torch.Tensor:
    """[n, 2]: mean row and column of the pixels of `shade`."""
    mask = (x[:, 0] == shade).float()  # [n, 16, 16]
    grid = torch.arange(16.0)
    rows = (mask.sum(2) * grid).sum(1) / mask.sum((1, 2))
    cols = (mask.sum(1) * grid).sum(1) / mask.sum((1, 2))
    return torch.stack([rows, cols], 1)


@pytest.mark.parametrize("background", [-1.0, 1.0])
def test_shift_moves_each_image_up_to_an_eighth_and_keeps_its_background(background: float) -> None:
    torch.manual_seed(0)
    x = _squares(64, background)
    moved = shift(x)  # 16 x 16: up to 2 pixels each way
    assert moved.shape == x.shape
    assert set(moved.unique().tolist()) == {-1.0, 1.0}  # the border repeats the background: no new shade
    assert torch.equal((moved == -background).sum((1, 2, 3)), torch.full((64,), 16))  # the square is whole
    offsets = _centre(moved, -background) - 7.5
    assert offsets.abs().max() <= 2
    assert len({tuple(o.tolist()) for o in offsets}) > 10  # each image draws its own shift


def test_consistency_penalty_is_zero_for_a_shift_invariant_critic_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    x, labels = _squares(32, -1.0), torch.zeros(32, dtype=torch.long)

    def total(images: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return images.sum((1, 2, 3))  # the square keeps its area wherever it goes

    def left_half(images: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return images[:, :, :, :8].sum((1, 2, 3))  # the square crosses the middle column

    assert consistency_penalty(total, x, labels, total(x, labels)) == 0
    assert consistency_penalty(left_half, x, labels, left_half(x, labels)) > 0


def test_consistency_regularisation_changes_the_discriminator_step_and_the_run_key(tmp_path: Path) -> None:
    spec = GanSpec.from_task_config(TINY, 3)
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.rand(48, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(48) % 3
    cpu = torch.device("cpu")

    def discriminator_after(weight: float) -> dict[str, torch.Tensor]:
        config = dataclasses.replace(TINY, consistency_weight=weight)
        state = new_state(spec, config, seed=3, device=cpu)
        train_gan(
            state, images, labels, config, seed=3, device=cpu, checkpoint=tmp_path / f"{weight}.pt", key="k", steps=2
        )
        assert all(torch.isfinite(torch.tensor(state.history["d_loss"])))
        return state.discriminator.state_dict()

    plain, regularised = discriminator_after(0.0), discriminator_after(10.0)
    assert any(not torch.equal(plain[k], regularised[k]) for k in plain)
    keys = {run_key(spec, dataclasses.replace(TINY, consistency_weight=w), 1, "fp", None) for w in (0.0, 10.0)}
    assert len(keys) == 2  # a checkpoint trained without the penalty is not resumed with it


def test_a_negative_consistency_weight_is_refused() -> None:
    with pytest.raises(ConfigError, match="consistency_weight"):
        CreativesConfig(consistency_weight=-1.0)

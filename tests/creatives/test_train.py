"""Resumable GAN training: an interrupted run continues where it stopped and ends where it would have."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipelines.creatives.gan import GanSpec
from pipelines.creatives.train import new_state, run_key, train_gan
from tests.creatives.store import TINY

SPEC = GanSpec(n_classes=3, image_size=8, z_dim=8, g_channels=8, d_channels=8)
CONFIG = dataclasses.replace(TINY, checkpoint_every=2, log_every=2)
CPU = torch.device("cpu")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(48, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(48) % 3


class Killed(Exception):
    pass


def _train(checkpoint: Path, steps: int, key: str = "k", kill_at: int = 0) -> tuple[object, dict[str, float]]:
    state = new_state(SPEC, CONFIG, seed=3, device=CPU)
    images, labels = _data()

    def probe(_: object) -> dict[str, float]:
        if state.step == kill_at:
            raise Killed  # the worker dies after this step, before its checkpoint
        return {}

    stats = train_gan(
        state,
        images,
        labels,
        CONFIG,
        seed=3,
        device=CPU,
        checkpoint=checkpoint,
        key=key,
        steps=steps,
        probe=probe,
        probe_every=1,
    )
    return state, stats


def _same_weights(a: object, b: object) -> bool:
    pairs = [(a.ema, b.ema), (a.generator, b.generator), (a.discriminator, b.discriminator)]  # type: ignore[attr-defined]
    return all(
        torch.equal(x, y)
        for m, n in pairs
        for x, y in zip(m.state_dict().values(), n.state_dict().values(), strict=True)
    )


def test_resume_from_checkpoint_continues_where_it_stopped(tmp_path: Path) -> None:
    whole, _ = _train(tmp_path / "whole.pt", steps=8)

    interrupted = tmp_path / "interrupted.pt"
    with pytest.raises(Killed):
        _train(interrupted, steps=8, kill_at=5)
    assert payload_step(interrupted) == 4  # the last checkpoint before the kill
    resumed, second = _train(interrupted, steps=8)

    assert second["resumed_at_step"] == 4
    assert second["steps_this_call"] == 4  # only the missing steps were trained
    assert _same_weights(whole, resumed)  # weights, EMA and discriminator as if never interrupted
    assert resumed.history == whole.history  # type: ignore[attr-defined]
    assert resumed.opt_g.state_dict()["state"][0]["step"] == whole.opt_g.state_dict()["state"][0]["step"]  # type: ignore[attr-defined]


def test_checkpoint_of_another_run_is_not_resumed(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    _train(path, steps=3, key="other data")
    _, stats = _train(path, steps=3, key="this data")
    assert stats["resumed_at_step"] == -1
    assert stats["steps_this_call"] == 3


def test_run_key_changes_with_the_data_and_the_start_point() -> None:
    base = run_key(SPEC, CONFIG, 1, "fp", None)
    assert base == run_key(SPEC, CONFIG, 1, "fp", None)
    assert base != run_key(SPEC, CONFIG, 1, "fp2", None)
    assert base != run_key(SPEC, CONFIG, 1, "fp", "creative_gan-20260101-abc")


def payload_step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["step"])

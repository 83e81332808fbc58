"""Resumable GAN training: an interrupted run continues where it stopped and ends where it would have."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.train import GanState, frozen, new_state, run_key, train_gan
from tests.creatives.store import TINY

CONFIG = dataclasses.replace(TINY, checkpoint_every=2, log_every=2)
SPEC = GanSpec.from_task_config(CONFIG, 3)
CPU = torch.device("cpu")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(48, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(48) % 3


class Killed(Exception):
    pass


def _train(
    checkpoint: Path, steps: int, key: str = "k", kill_at: int = 0, probe_pause: float = 0.0
) -> tuple[object, dict[str, float]]:
    """A fresh pair trained to `steps`, probed after every step (each probe sleeps `probe_pause` seconds)."""
    state = new_state(SPEC, CONFIG, seed=3, device=CPU)
    images, labels = _data()

    def probe(_: object) -> dict[str, float]:
        if state.step == kill_at:
            raise Killed  # the worker dies after this step, before its checkpoint
        time.sleep(probe_pause)
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


def test_bf16_autocast_trains_float32_weights_and_is_a_different_run(tmp_path: Path) -> None:
    images, labels = _data()

    def trained(config: CreativesConfig, name: str) -> GanState:
        state = new_state(SPEC, config, seed=3, device=CPU)
        key = run_key(SPEC, config, 1, "fp", None)
        train_gan(state, images, labels, config, seed=3, device=CPU, checkpoint=tmp_path / name, key=key, steps=3)
        return state

    state = trained(dataclasses.replace(CONFIG, mixed_precision="bf16"), "bf16.pt")
    reference = trained(dataclasses.replace(CONFIG, mixed_precision="fp32"), "fp32.pt")

    weights = state.generator.state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert not _same_weights(state, reference)  # the forward passes really ran in bfloat16
    assert all(torch.isfinite(torch.tensor(v)).all() for v in state.history["d_loss"] + state.history["g_loss"])
    keys = {run_key(SPEC, dataclasses.replace(CONFIG, mixed_precision=p), 1, "fp", None) for p in ("bf16", "fp32")}
    assert len(keys) == 2  # a float32 checkpoint is not resumed under bfloat16


def test_frozen_module_gets_no_weight_gradients_and_thaws_even_on_an_error() -> None:
    layer = torch.nn.Linear(3, 1)
    x = torch.ones(2, 3, requires_grad=True)
    with frozen(layer):
        layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None  # input gradients still flow through
    assert all(p.requires_grad for p in layer.parameters())

    with pytest.raises(RuntimeError, match="mid-step"), frozen(layer):
        raise RuntimeError("mid-step")
    assert all(p.requires_grad for p in layer.parameters())

    layer.bias.requires_grad_(False)  # frozen on purpose before: stays frozen after
    with frozen(layer):
        pass
    assert layer.weight.requires_grad and not layer.bias.requires_grad


def test_time_spent_in_probes_is_not_counted_as_training(tmp_path: Path) -> None:
    started = time.perf_counter()
    _, stats = _train(tmp_path / "c.pt", 4, probe_pause=0.2)
    wall = time.perf_counter() - started
    assert stats["probe_seconds"] >= 0.8  # four probes of 0.2 s
    assert stats["seconds"] <= wall - 0.8
    assert stats["images_per_second"] == pytest.approx(4 * CONFIG.batch_size / stats["seconds"])

"""DP-SGD for the profile VAE: per-user norms are right, a private run records its epsilon, bad budgets fail."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sqlalchemy.engine import Engine

from pipelines import modeltask, registry
from pipelines.errors import ConfigError
from pipelines.profiles import MODEL_NAME, ProfileConfig
from pipelines.profiles.model import MultVAE, VAEConfig
from pipelines.profiles.privacy import bag_norm_sample
from pipelines.profiles.task import ProfileRecipe
from pipelines.profiles.training import to_batch, train
from pipelines.settings import Settings

from .store import events_frame, load_store

DAY = dt.date(2026, 3, 31)
PRIVATE = ProfileConfig(
    hidden_dim=32, latent_dim=8, epochs=6, batch_size=32, heldout_fraction=0.25, eval_min_items=4, segments=4,
    top_categories=2, ease_lambda=10.0, dp_epsilon=3.0, dp_delta=1e-4, dp_max_grad_norm=1.0,
)  # fmt: skip


def test_the_bag_norm_is_each_users_own_gradient_norm() -> None:
    torch.manual_seed(0)
    # Row 1 names item 2 twice: its weights add up before squaring.
    rows = sp.csr_matrix((np.array([1.0, 2.0, 0.5, 1.5, 3.0]), ([0, 0, 1, 1, 2], [0, 3, 2, 4, 1])), shape=(3, 6))
    batch = to_batch(rows)
    batch.indices[3] = 2  # a duplicate item inside row 1, which CSR input never has but the norm must survive
    model = MultVAE(VAEConfig(n_items=6, hidden_dim=5, latent_dim=2, input_dropout=0.0)).eval()
    bag = model.encoder_in
    out = bag(batch.indices, batch.values, batch.offsets)
    upstream = torch.randn_like(out)
    norms = bag_norm_sample(bag, [batch.indices, batch.values, batch.offsets], upstream)
    for row in range(3):
        bag.zero_grad()
        (out[row] * upstream[row]).sum().backward(retain_graph=True)
        torch.testing.assert_close(norms[bag.weight][row], bag.weight.grad.norm())
        torch.testing.assert_close(norms[bag.bias][row], bag.bias.grad.norm())


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"dp_epsilon": 0.0}, "dp_epsilon=0.0"),
        ({"dp_epsilon": -1.0}, "dp_epsilon=-1.0"),
        ({"dp_epsilon": 1.0, "dp_delta": 1.0}, "dp_delta=1.0"),
        ({"dp_epsilon": 1.0, "dp_delta": 0.0}, "dp_delta=0.0"),
        ({"dp_epsilon": 1.0, "dp_max_grad_norm": 0.0}, "dp_max_grad_norm=0.0"),
        ({"dp_epsilon": 1.0, "train_processes": 2}, "DP-SGD .* trains in one process"),
    ],
)
def test_a_bad_privacy_budget_is_refused_by_name(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ProfileConfig(**overrides)


def test_private_training_is_reproducible_and_spends_at_most_its_budget() -> None:
    rng = np.random.default_rng(0)
    matrix = sp.random(160, 40, density=0.15, format="csr", random_state=rng, dtype=np.float32)
    config = dataclasses.replace(PRIVATE, epochs=2)
    model, history = train(matrix, config, torch.device("cpu"), seed=7)
    again, _ = train(matrix, config, torch.device("cpu"), seed=7)
    assert 0 < history[-1].epsilon <= config.dp_epsilon
    assert not hasattr(model, "autograd_grad_sample_hooks")  # Opacus's hooks are gone from the returned model
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], weight)  # sampling and noise are seeded
    plain, _ = train(matrix, dataclasses.replace(config, dp_epsilon=None), torch.device("cpu"), seed=7)
    assert not torch.allclose(plain.decoder.weight, model.decoder.weight)  # the private run is another one


@pytest.mark.integration
def test_a_private_run_registers_the_epsilon_it_spent(engine: Engine, tmp_path: Path) -> None:
    load_store(engine, 240, events_frame(np.arange(1, 221), DAY - dt.timedelta(days=29), 30, seed=0))
    summary = modeltask.run(
        ProfileRecipe(PRIVATE), engine, DAY, Settings(state_dir=tmp_path, device="cpu"), device=torch.device("cpu")
    )
    assert summary["trained"] and summary["outputs"]["profiles_written"] == 220
    run = registry.champion(engine, MODEL_NAME)
    assert run is not None and run.version == summary["candidate"]
    spent = run.metrics["dp_epsilon_spent"]
    assert 0 < spent <= PRIVATE.dp_epsilon
    assert summary["training"]["dp_epsilon_spent"] == pytest.approx(spent)
    assert (run.params["dp_epsilon"], run.params["dp_delta"], run.params["dp_max_grad_norm"]) == (3.0, 1e-4, 1.0)

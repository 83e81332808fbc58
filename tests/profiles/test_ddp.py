"""The profile VAE in two gloo processes (DDP) follows the single-process loss curve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pipelines.errors import ConfigError
from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.training import train

CONFIG = ProfileConfig(hidden_dim=32, latent_dim=8, epochs=3, batch_size=40, input_dropout=0.0)


def _tastes(n_users: int = 401, n_items: int = 60) -> sp.csr_matrix:
    """Three taste groups over their own thirds of the catalogue, so the loss has something to fall by."""
    rng = np.random.default_rng(3)
    rows, cols = [], []
    for user in range(n_users):
        third = user % 3
        items = rng.choice(np.arange(third * 20, third * 20 + 20), size=rng.integers(3, 9), replace=False)
        rows += [user] * len(items)
        cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def test_two_gloo_processes_follow_the_single_process_loss_curve() -> None:
    matrix = _tastes()  # 401 users: the last batch has one, so the second process steps with none
    one, one_history = train(matrix, CONFIG, torch.device("cpu"), seed=11)
    two, two_history = train(matrix, dataclasses.replace(CONFIG, train_processes=2), torch.device("cpu"), seed=11)

    assert len(two_history) == len(one_history) == 3
    assert one_history[-1].nll < one_history[0].nll - 0.3  # it learned, so the comparison means something
    for a, b in zip(one_history, two_history, strict=True):
        # The second process draws its own posterior samples, so the curves are close, not equal (with the
        # sampling noise taken out the weights agree to 1e-7, as tests/recs/test_ddp.py checks for SASRec).
        assert b.nll == pytest.approx(a.nll, rel=0.01)
        assert b.kl == pytest.approx(a.kl, rel=0.1, abs=0.05)
        assert b.beta == a.beta and b.learning_rate == a.learning_rate
    assert not two.training  # returned in eval mode, as from one process


def test_benchmark_hooks_need_one_process() -> None:
    with pytest.raises(ConfigError, match="train_processes=1"):
        train(_tastes(30), dataclasses.replace(CONFIG, train_processes=2), torch.device("cpu"), 0, on_epoch=print)

"""SASRec in two gloo processes (DDP) trains as one process does: same losses, same weights, same metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.compute import derive_seed
from pipelines.errors import ConfigError
from pipelines.recs.config import RecsConfig
from pipelines.recs.sequences import from_lists, leave_one_out
from pipelines.recs.train import batches_per_epoch, train

# Dropout off: the two runs then differ only in the order floating-point sums are taken.
CONFIG = RecsConfig(max_len=8, hidden=16, blocks=1, heads=2, dropout=0.0, batch_size=16, max_epochs=2, patience=5)


def _sequences(n_users: int = 161, n_items: int = 40):
    """Users walk the catalogue in steps of 1 or 3 from a random start: a pattern a small model learns."""
    rng = np.random.default_rng(derive_seed("test_ddp"))
    seqs = []
    for user in range(n_users):
        step, start, length = 1 + 2 * (user % 2), rng.integers(1, n_items + 1), rng.integers(4, 12)
        seqs.append((start - 1 + step * np.arange(length)) % n_items + 1)
    return leave_one_out(from_lists(np.arange(n_users), seqs)), n_items


def test_two_gloo_processes_follow_the_single_process_loss_curve() -> None:
    split, n_items = _sequences()
    # The last batch holds one user: the second process gets none and must still step.
    assert (split.train.lengths >= 2).sum() % CONFIG.batch_size == 1
    device, seed = torch.device("cpu"), derive_seed("test_ddp", "train")

    one = train(split, n_items, CONFIG, device, seed)
    two = train(split, n_items, RecsConfig(**{**vars(CONFIG), "train_processes": 2}), device, seed)

    assert [h["epoch"] for h in two.history] == [1, 2]
    for a, b in zip(one.history, two.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["valid_ndcg@10"] == pytest.approx(a["valid_ndcg@10"], abs=1e-3)
    assert one.history[1]["loss"] < one.history[0]["loss"]  # it learned, so the comparison means something
    for name, weight in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[name], weight, rtol=1e-3, atol=1e-4)
    assert two.best_epoch == one.best_epoch
    assert batches_per_epoch(split.train, CONFIG.batch_size) == 11


def test_benchmark_hooks_need_one_process() -> None:
    split, n_items = _sequences(n_users=20)
    config = RecsConfig(**{**vars(CONFIG), "train_processes": 2})
    with pytest.raises(ConfigError, match="train_processes=1"):
        train(split, n_items, config, torch.device("cpu"), 0, on_epoch=lambda model: {})


def test_train_processes_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="train_processes"):
        RecsConfig(train_processes=0)

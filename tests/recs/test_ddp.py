"""SASRec in two gloo processes (DDP) trains as one process does, and a task run with two registers rank 0's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy.engine import Engine

from pipelines import distributed, modeltask, registry
from pipelines.compute import derive_seed
from pipelines.errors import ConfigError
from pipelines.recs.config import MODEL_NAME, RecsConfig
from pipelines.recs.sequences import from_lists, leave_one_out
from pipelines.recs.task import RecsRecipe
from pipelines.recs.train import batches_per_epoch, train
from pipelines.settings import Settings
from tests.recs.store import last_day, write_store

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


@pytest.mark.integration
def test_a_two_process_task_run_registers_and_serves_rank_zeros_model(engine: Engine, tmp_path: Path) -> None:
    events = write_store(engine, extra_users=3)
    day = last_day(events)
    config = RecsConfig(hidden=32, blocks=1, dropout=0.1, max_len=10, batch_size=32, learning_rate=0.01,
                        max_epochs=6, patience=3, top_k=5, device="cpu", train_processes=2)  # fmt: skip
    recipe = RecsRecipe(config)
    summary = modeltask.run(recipe, engine, day, Settings(state_dir=tmp_path), device=torch.device("cpu"))

    assert summary["trained"] and summary["candidate_status"] == "promoted"
    assert summary["training"]["refit_epochs"] == summary["training"]["best_epoch"]  # the refit ran in 2 too
    assert summary["metrics"]["test_ndcg@10"] > summary["metrics"]["popularity_test_ndcg@10"] + 0.3
    champion = registry.champion(engine, MODEL_NAME)
    assert champion is not None and champion.params["train_processes"] == 2
    served = modeltask.load(recipe, champion)
    assert served is not None and summary["outputs"]["rows_written"] > 0


def _fails_on_rank_one(group: distributed.Group) -> int:
    if group.rank == 1:
        raise ValueError("rank 1 could not train")
    return int(group.all_sum(np.array([1.0]))[0])  # rank 0 waits in a collective rank 1 never joins


def test_a_failing_rank_fails_the_run_instead_of_hanging_it() -> None:
    with pytest.raises(Exception, match="rank 1 could not train"):
        distributed.run(2, torch.device("cpu"), _fails_on_rank_one)

"""Next-item evaluation against hand-computed values (the tie rule itself: tests/test_ranking.py)."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.recs.metrics import evaluate


def _one(scores: list[list[float]], targets: list[int], history: list[list[int]] | None = None) -> dict[str, float]:
    hist = None if history is None else torch.tensor(history)
    batches = [(torch.tensor(scores), torch.tensor(targets), hist)]
    return evaluate(batches, n_items=len(scores[0]) - 1, metrics=("hr@2", "ndcg@2", "hr@3", "ndcg@3"))


def test_hr_and_ndcg_by_hand() -> None:
    # Row 0 is padding. User A: target 1 ranked 1st. User B: target 1 ranked 3rd (after 4 and 2).
    scores = [[0.0, 0.9, 0.1, 0.8, 0.2], [0.0, 0.5, 0.6, 0.1, 0.7]]
    m = _one(scores, [1, 1])
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(0.5 * 1.0)
    assert m["hr@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx(0.5 * (1.0 + 1.0 / math.log2(4)))


def test_ties_count_as_their_expectation() -> None:
    # All four items tie (the padding row never counts): the target is at rank 0..3 with equal probability.
    m = _one([[0.0, 1.0, 1.0, 1.0, 1.0]], [2])
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((1.0 + 1.0 / math.log2(3)) / 4)


def test_history_exclusion_moves_the_target_up() -> None:
    scores = [[0.0, 0.9, 0.8, 0.7, 0.1]]  # target 3 is third
    assert _one(scores, [3])["hr@2"] == 0.0
    assert _one(scores, [3], history=[[0, 1]])["hr@2"] == 1.0  # item 1 was in the history


def test_coverage_counts_distinct_items_in_top10() -> None:
    m = evaluate([(torch.tensor([[0.0] + [1.0] * 30]), torch.tensor([1]), None)], n_items=30)
    assert m["coverage@10"] == pytest.approx(10 / 30)

"""Shared ranking metrics and the popularity baseline against hand-computed values, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.ranking import UNRANKED, expected_hits, metrics_from_ranks, parse_metric, popularity, target_ranks


def _disc(rank: int) -> float:
    """Discount of a 0-based rank."""
    return 1.0 / math.log2(rank + 2)


def test_target_ranks_count_better_and_tied_items() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    greater, ties = target_ranks(scores, torch.tensor([1, 3]))
    assert greater.tolist() == [1, 0]
    assert ties.tolist() == [1, 3]


def test_target_ranks_of_several_targets_per_user() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1], [0.1, 0.2, 0.3, 0.4]])
    greater, ties = target_ranks(scores, torch.tensor([0, 2, 3, 0]), rows=torch.tensor([0, 0, 0, 1]))
    assert greater.tolist() == [0, 1, 3, 3]
    assert ties.tolist() == [0, 1, 0, 0]


def test_a_target_scored_minus_infinity_is_a_miss_not_a_tie() -> None:
    scores = torch.tensor([[0.5, float("-inf"), float("-inf")]])
    greater, ties = target_ranks(scores, torch.tensor([2]))
    assert (greater.tolist(), ties.tolist()) == ([UNRANKED], [0])
    assert metrics_from_ranks(greater, ties, None, ["hr@10"])["hr@10"] == 0.0


def test_ties_count_as_their_expectation() -> None:
    # All four items tie: the target is at rank 0..3 with equal probability.
    hr, gain = expected_hits(np.array([0]), np.array([3]), k=2)
    assert hr[0] == pytest.approx(0.5)
    assert gain[0] == pytest.approx((_disc(0) + _disc(1)) / 4)


def test_hr_and_ndcg_of_one_target_per_user() -> None:
    # User A's target is first; user B's is third, tied with the fourth item (rank 2 or 3).
    m = metrics_from_ranks(np.array([0, 2]), np.array([0, 1]), None, ["hr@3", "ndcg@3", "hr@1"])
    assert m["hr@3"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["ndcg@3"] == pytest.approx((1.0 + 0.5 * _disc(2)) / 2)
    assert m["hr@1"] == pytest.approx(0.5)


def test_recall_and_ndcg_of_several_targets_with_ties() -> None:
    # User 0: targets at rank 0 and at ranks 2..3 (tied with one other item); user 1: one target at rank 4.
    greater, ties, users = np.array([0, 2, 4]), np.array([0, 1, 0]), np.array([0, 0, 1])
    m = metrics_from_ranks(greater, ties, users, ["recall@3", "ndcg@3", "recall@1", "ndcg@5"])
    assert m["recall@3"] == pytest.approx(((1 + 0.5) / 2 + 0.0) / 2)
    ndcg_0 = (_disc(0) + 0.5 * _disc(2)) / (_disc(0) + _disc(1))
    assert m["ndcg@3"] == pytest.approx(ndcg_0 / 2)
    assert m["recall@1"] == pytest.approx((1 / 1 + 0.0) / 2)  # divided by min(k, targets)
    ndcg_0_at_5 = (_disc(0) + 0.5 * (_disc(2) + _disc(3))) / (_disc(0) + _disc(1))
    assert m["ndcg@5"] == pytest.approx((ndcg_0_at_5 + _disc(4) / _disc(0)) / 2)


def test_hit_rate_refuses_several_targets_per_user() -> None:
    with pytest.raises(ValueError, match="recall@10"):
        metrics_from_ranks(np.array([0, 1]), np.array([0, 0]), np.array([0, 0]), ["hr@10"])


def test_no_users_give_nan() -> None:
    assert math.isnan(metrics_from_ranks(np.zeros(0), np.zeros(0), None, ["ndcg@10"])["ndcg@10"])


@pytest.mark.parametrize("name", ["ndcg_at_100", "ndcg@0", "map@10", "ndcg@"])
def test_metric_names_follow_one_scheme(name: str) -> None:
    with pytest.raises(ValueError, match="hr@K, recall@K, ndcg@K"):
        parse_metric(name)
    assert parse_metric("recall@20") == ("recall", 20)


def test_popularity_counts_interactions_per_item() -> None:
    items = np.array([1, 3, 3, 1, 3])
    assert popularity(items, 5).tolist() == [0, 2, 0, 3, 0]
    assert popularity(items, 5, weights=np.array([2.0, 1, 1, 2, 0.5])).tolist() == [0, 4, 0, 2.5, 0]

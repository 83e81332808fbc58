"""Strong-generalisation split and ranking metrics on hand-made matrices; popularity and EASE baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.profiles.evaluation import (
    Split,
    ease_scorer,
    ease_weights,
    popularity_scorer,
    ranking_metrics,
    strong_generalisation_split,
)


def _csr(dense: list[list[float]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(dense, dtype=np.float32))


def test_metrics_match_hand_computed_values_and_exclude_folded_in_items() -> None:
    # User 0 folded in item 0 (the best score, excluded); targets 1 and 2 rank 1st and 5th.
    # User 1 folded in item 5; its single target 4 ranks 3rd among items 0-4 (scores 5, 4, 3, 2, 1).
    split = Split(
        foldin=_csr([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]),
        target=_csr([[0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]]),
        user_ids=np.array([10, 11]),
    )
    scores = np.array([[9, 8, 1, 7, 6, 5], [5, 4, 1, 2, 3, 9]], dtype=np.float32)
    metrics = ranking_metrics(lambda rows: scores[: rows.shape[0]], split, batch_size=2)
    ndcg_0 = (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    ndcg_1 = (1 / math.log2(4)) / 1.0
    assert metrics["recall@20"] == pytest.approx(1.0)
    assert metrics["recall@50"] == pytest.approx(1.0)
    assert metrics["ndcg@100"] == pytest.approx((ndcg_0 + ndcg_1) / 2)


def test_recall_divides_by_the_cutoff_when_there_are_more_targets() -> None:
    n_items = 200
    target = np.zeros((1, n_items), np.float32)
    target[0, 100:160] = 1  # 60 targets
    scores = -np.arange(n_items, dtype=np.float32)[None, :]  # rank = item index
    scores[0, 100:130] = 1000 - np.arange(30)  # 30 of the targets lead the ranking
    split = Split(
        foldin=sp.csr_matrix((1, n_items), dtype=np.float32), target=sp.csr_matrix(target), user_ids=np.array([1])
    )
    metrics = ranking_metrics(lambda rows: scores, split)
    assert metrics["recall@20"] == pytest.approx(20 / 20)
    assert metrics["recall@50"] == pytest.approx(30 / 50)


def test_split_folds_in_most_items_and_predicts_the_rest() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 40)) < 0.3).astype(np.float32) * rng.integers(1, 5, size=(30, 40))
    dense[0, :] = 0
    dense[0, :3] = 1  # too few items: not evaluated with min_items=5
    matrix = sp.csr_matrix(dense)
    split = strong_generalisation_split(matrix, np.arange(100, 130), 0.8, 5, seed=1)
    eligible = np.flatnonzero((dense > 0).sum(axis=1) >= 5)
    assert list(split.user_ids) == list(100 + eligible)
    fold, target = split.foldin.toarray(), split.target.toarray()
    for out_row, row in enumerate(eligible):
        n = int((dense[row] > 0).sum())
        assert not np.any((fold[out_row] > 0) & (target[out_row] > 0))
        np.testing.assert_array_equal((fold[out_row] > 0) | (target[out_row] > 0), dense[row] > 0)
        assert int((fold[out_row] > 0).sum()) == round(0.8 * n)
        np.testing.assert_array_equal(fold[out_row][fold[out_row] > 0], dense[row][fold[out_row] > 0])  # weights kept
    again = strong_generalisation_split(matrix, np.arange(100, 130), 0.8, 5, seed=1)
    assert (again.foldin != split.foldin).nnz == 0


def test_popularity_ranks_items_by_number_of_training_users() -> None:
    train = _csr([[5, 1, 0, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 0, 0, 1]])
    scores = popularity_scorer(train)(_csr([[0, 0, 0, 0]]))
    assert list(np.argsort(-scores[0], kind="stable")) == [0, 3, 1, 2]


def test_ease_recommends_the_item_bought_with_the_folded_in_one() -> None:
    # Items 0 and 1 always go together, items 2 and 3 always together.
    train = _csr([[1, 1, 0, 0]] * 6 + [[0, 0, 1, 1]] * 6 + [[1, 0, 1, 0]])
    weights = ease_weights(train, lam=1.0)
    assert np.allclose(np.diag(weights), 0.0)
    scores = ease_scorer(train, lam=1.0)(_csr([[1, 0, 0, 0], [0, 0, 0, 1]]))
    assert np.argmax(scores[0, 1:]) == 0  # item 1 goes with item 0
    assert np.argmax(scores[1, :3]) == 2  # item 2 goes with item 3


def test_ease_solves_its_closed_form() -> None:
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((50, 8)) < 0.4).astype(np.float32))
    lam = 2.0
    weights = ease_weights(train, lam)
    gram = (train.T @ train).toarray() + lam * np.eye(8)
    # Stationarity of min ||X - XB||^2 + lam ||B||^2 s.t. diag(B) = 0: (G B - X'X) is zero off the diagonal.
    residual = gram @ weights - (train.T @ train).toarray()
    off_diagonal = residual - np.diag(np.diag(residual))
    assert np.abs(off_diagonal).max() < 1e-4


def test_a_constant_scorer_is_scored_as_a_random_tie_break() -> None:
    # Item 0 is folded in (excluded); the target, item 2, ties with items 1 and 3: ranks 0, 1, 2 equally likely.
    split = Split(foldin=_csr([[1, 0, 0, 0]]), target=_csr([[0, 0, 1, 0]]), user_ids=np.array([7]))
    metrics = ranking_metrics(lambda rows: np.ones((rows.shape[0], 4), np.float32), split)
    assert metrics["ndcg@100"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4)) / 3)

"""Strong-generalisation evaluation (Liang et al. 2018) and the two baselines it is read against.

Held-out users never train the model: a random `foldin_fraction` of each one's items is folded in (fed
to the scorer), the rest is predicted. Items folded in are excluded from the ranking. The metrics and
their tie rule are those of `pipelines.ranking`. Popularity and EASE (Steck, WWW 2019) are scored on
exactly the same split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from pipelines.profiles.config import METRICS
from pipelines.ranking import metrics_from_ranks, popularity, target_ranks

log = logging.getLogger(__name__)

Scorer = Callable[[sp.csr_matrix], np.ndarray]  # fold-in rows [b, n_items] -> scores [b, n_items]


@dataclass(frozen=True)
class Split:
    """Fold-in rows (weighted, as the model sees them) and binary targets of the same held-out users."""

    foldin: sp.csr_matrix
    target: sp.csr_matrix
    user_ids: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.foldin.shape[0])


def strong_generalisation_split(
    matrix: sp.csr_matrix, user_ids: np.ndarray, foldin_fraction: float, min_items: int, seed: int
) -> Split:
    """Per held-out user with at least `min_items` items: a random `foldin_fraction` folded in, rest targets."""
    matrix = matrix.tocsr()
    rng = np.random.default_rng(seed)
    counts = np.diff(matrix.indptr)
    eligible = np.flatnonzero(counts >= min_items)
    fold_rows, fold_cols, fold_vals, tgt_rows, tgt_cols = [], [], [], [], []
    for out_row, row in enumerate(eligible):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        cols, vals = matrix.indices[lo:hi], matrix.data[lo:hi]
        n = hi - lo
        n_fold = min(n - 1, max(1, int(round(foldin_fraction * n))))
        picked = np.zeros(n, dtype=bool)
        picked[rng.choice(n, size=n_fold, replace=False)] = True
        fold_rows.append(np.full(n_fold, out_row))
        fold_cols.append(cols[picked])
        fold_vals.append(vals[picked])
        tgt_rows.append(np.full(n - n_fold, out_row))
        tgt_cols.append(cols[~picked])
    shape = (len(eligible), matrix.shape[1])

    def _csr(rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray] | None) -> sp.csr_matrix:
        if not rows:
            return sp.csr_matrix(shape, dtype=np.float32)
        r, c = np.concatenate(rows), np.concatenate(cols)
        v = np.concatenate(vals) if vals is not None else np.ones(len(r), np.float32)
        return sp.csr_matrix((v.astype(np.float32), (r, c)), shape=shape)

    return Split(_csr(fold_rows, fold_cols, fold_vals), _csr(tgt_rows, tgt_cols, None), user_ids[eligible])


def ranking_metrics(scorer: Scorer, split: Split, batch_size: int = 1000) -> dict[str, float]:
    """Mean Recall@20, Recall@50 and NDCG@100 of `scorer` over the split's users (fold-in items excluded)."""
    empty = np.zeros(0, np.int64)
    greater, ties, users = [empty], [empty], [empty]
    for start in range(0, split.n_users, batch_size):
        fold = split.foldin[start : start + batch_size]
        target = split.target[start : start + batch_size].tocoo()
        scores = torch.tensor(np.asarray(scorer(fold)), dtype=torch.float32)  # [b, n_items], a copy of ours
        fold_rows, fold_cols = fold.nonzero()
        scores[torch.from_numpy(fold_rows), torch.from_numpy(fold_cols)] = float("-inf")
        rows, cols = torch.from_numpy(target.row.astype(np.int64)), torch.from_numpy(target.col.astype(np.int64))
        above, tied = target_ranks(scores, cols, rows)
        greater.append(above)
        ties.append(tied)
        users.append(target.row + start)
    return metrics_from_ranks(np.concatenate(greater), np.concatenate(ties), np.concatenate(users), METRICS)


def popularity_scorer(train: sp.csr_matrix) -> Scorer:
    """The popularity baseline as a scorer: items ranked by the number of training users who touched them."""
    touched = (train > 0).tocsr()  # one entry per (user, item) pair
    counts = popularity(touched.indices, touched.shape[1])  # [n_items]
    return lambda rows: np.broadcast_to(counts, (rows.shape[0], counts.shape[0]))


def ease_weights(train: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE item-item weights B [n_items, n_items]: B = I - P diagMat(1/diag(P)), P = (X'X + lam I)^-1.

    P comes from a float32 Cholesky factorisation (X'X + lam I is symmetric positive definite): half the
    flops of a general inverse at the same metrics (docs/model-notes.md).
    """
    started = time.perf_counter()
    binary = (train > 0).astype(np.float32)
    gram = torch.from_numpy((binary.T @ binary).toarray())  # [n_items, n_items], exact counts below 2**24
    gram.diagonal().add_(lam)
    precision = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    del gram
    weights = precision.div_(-precision.diagonal().clone())  # column j over -P_jj (a copy: in place)
    weights.diagonal().zero_()
    log.info("EASE: %d items, lambda %.0f, solved in %.1f s", weights.shape[0], lam, time.perf_counter() - started)
    return weights.numpy()


def linear_scorer(weights: np.ndarray) -> Scorer:
    """Scores of binarised fold-in rows through item-item weights [n_items, n_items]."""
    return lambda rows: np.asarray((rows > 0).astype(np.float32) @ weights)


def ease_scorer(train: sp.csr_matrix, lam: float) -> Scorer:
    """EASE scores of binarised fold-in rows (closed form, one matrix inverse)."""
    return linear_scorer(ease_weights(train, lam))

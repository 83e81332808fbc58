"""Full-ranking metrics (HR@k, Recall@k, NDCG@k) and the popularity baseline, shared by every model.

Metric names follow one scheme, `name@k`: `hr@10`, `recall@20`, `ndcg@100`.

Tie rule: when a target ties with t other items after g strictly better ones, a random tie-break puts it
uniformly at any rank in [g, g + t]; every metric is reported as its expectation over that placement
(linearity of expectation makes this exact for several targets of one user too). A constant scorer, such
as popularity with many equal counts, is then neither flattered nor punished by the order of item ids.
A target scored -inf cannot be recommended (excluded items and items a model never saw score -inf): it
counts as a miss, never as tied with the excluded items.

Per user with n targets: Recall@k is the expected number of targets in the top k over min(k, n), NDCG@k
the expected DCG over the ideal DCG of min(k, n) hits (Liang et al. 2018), and HR@k, defined for one
target per user (next-item evaluation), the probability that the target is in the top k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

KINDS = ("hr", "recall", "ndcg")
_CHUNK = 1024  # targets ranked at once: memory is one [chunk, items] copy of their users' score rows
UNRANKED = np.iinfo(np.int64).max // 4  # the `greater` of a target scored -inf: beyond every cutoff


def parse_metric(name: str) -> tuple[str, int]:
    """'ndcg@10' -> ('ndcg', 10), with an error naming the scheme for anything else."""
    kind, _, cutoff = name.partition("@")
    if kind not in KINDS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"metric {name!r} is not one of {', '.join(f'{k}@K' for k in KINDS)} with K >= 1")
    return kind, int(cutoff)


def target_ranks(
    scores: torch.Tensor, items: torch.Tensor, rows: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(items scored strictly higher, other items scored the same) for each target of `scores` [users, items].

    Target i is item `items[i]` of user `rows[i]`; without `rows`, target i belongs to user i (one each).
    A target scored -inf gets `UNRANKED` and no ties: a miss at every cutoff.
    """
    greater, ties = [], []
    for start in range(0, len(items), _CHUNK):
        cols = items[start : start + _CHUNK]
        block = scores[start : start + _CHUNK] if rows is None else scores[rows[start : start + _CHUNK]]
        value = block.gather(1, cols.unsqueeze(1))  # [chunk, 1]
        above = torch.count_nonzero(block > value, dim=1)
        same = torch.count_nonzero(block == value, dim=1) - 1
        unrankable = torch.isneginf(value.squeeze(1))
        greater.append(torch.where(unrankable, UNRANKED, above).cpu().numpy())
        ties.append(torch.where(unrankable, 0, same).cpu().numpy())
    if not greater:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(greater), np.concatenate(ties)


def expected_hits(greater: np.ndarray, ties: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the probability of a top-k rank and the expected discount 1/log2(rank + 2) within it."""
    cumulative = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])  # [k + 1]
    lo = np.minimum(greater, k)
    hi = np.minimum(greater + ties + 1, k)
    span = ties + 1.0
    return (hi - lo) / span, (cumulative[hi] - cumulative[lo]) / span


def metrics_from_ranks(
    greater: np.ndarray, ties: np.ndarray, users: np.ndarray | None, names: Sequence[str]
) -> dict[str, float]:
    """Mean of each named metric over the users with at least one target (NaN when there are none).

    `users` holds the user index of each target (None: one target per user, in order).
    """
    users = np.arange(len(greater)) if users is None else np.asarray(users)
    _, user, n_targets = np.unique(users, return_inverse=True, return_counts=True)
    out: dict[str, float] = {}
    for name in names:
        kind, k = parse_metric(name)
        if not len(n_targets):
            out[name] = float("nan")
            continue
        hit, gain = expected_hits(greater, ties, k)
        relevant = np.minimum(k, n_targets)  # [users]
        if kind == "hr":
            if n_targets.max() > 1:
                raise ValueError(f"{name} needs exactly one target per user; use recall@{k} for several")
            per_user = np.bincount(user, weights=hit)
        elif kind == "recall":
            per_user = np.bincount(user, weights=hit) / relevant
        else:
            ideal = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))[relevant - 1]
            per_user = np.bincount(user, weights=gain) / ideal
        out[name] = float(per_user.mean())
    return out


def popularity(items: np.ndarray, n_items: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The popularity baseline's scores [n_items]: training interactions per item (weighted when given).

    Every user gets this one ranking; both models report it beside their own figures on the same split.
    """
    return np.bincount(items, weights=weights, minlength=n_items).astype(np.float32)

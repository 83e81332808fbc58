"""Full-ranking next-item metrics: HR@k and NDCG@k with ties scored as their expectation.

Every item of the catalogue is a candidate (no sampled negatives: sampled metrics are 8-15x higher and
not comparable). When the target ties with t other items after g strictly better ones, a random
tie-break puts it uniformly at any rank in [g, g + t]; we report the expected HR and NDCG over that
range, so a constant scorer (popularity with many equal counts) is not flattered or punished by the
order of item ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

CUTOFFS = (10, 20)


def rank_stats(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(items strictly above the target, other items tied with it) for each row: [batch, items], [batch]."""
    target_scores = scores.gather(1, targets.unsqueeze(1))  # [batch, 1]
    greater = torch.count_nonzero(scores > target_scores, dim=1)
    ties = torch.count_nonzero(scores == target_scores, dim=1) - 1
    return greater, ties


def expected_hits(greater: np.ndarray, ties: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row expected HR@k and NDCG@k for a target uniformly placed in ranks [greater, greater + ties]."""
    discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])  # [k + 1]
    lo = np.minimum(greater, k)
    hi = np.minimum(greater + ties + 1, k)
    span = ties + 1.0
    return (hi - lo) / span, (discount[hi] - discount[lo]) / span


def summarize(greater: np.ndarray, ties: np.ndarray, cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in cutoffs:
        hr, ndcg = expected_hits(greater, ties, k)
        out[f"hr@{k}"] = float(hr.mean()) if len(hr) else 0.0
        out[f"ndcg@{k}"] = float(ndcg.mean()) if len(ndcg) else 0.0
    return out


def evaluate(
    score_batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    n_items: int,
    cutoffs: Sequence[int] = CUTOFFS,
) -> dict[str, float]:
    """Metrics over batches of (scores [batch, n_items + 1], targets [batch], history-to-exclude or None).

    When a history matrix (item rows, 0 = padding) is given, those items are pushed below every other
    item before ranking. Also reports catalogue coverage: the share of items in at least one top-10.
    """
    greater_all, ties_all = [], []
    covered = torch.zeros(n_items + 1, dtype=torch.bool)
    for scores, targets, history in score_batches:
        scores[:, 0] = float("-inf")  # the batch's scores are ours to modify
        if history is not None:
            scores.scatter_(1, history, float("-inf"))
            scores[:, 0] = float("-inf")
        greater, ties = rank_stats(scores, targets)
        greater_all.append(greater.cpu().numpy())
        ties_all.append(ties.cpu().numpy())
        covered[scores.topk(min(10, n_items), dim=1).indices.flatten().cpu()] = True
    greater = np.concatenate(greater_all) if greater_all else np.zeros(0)
    ties = np.concatenate(ties_all) if ties_all else np.zeros(0)
    metrics = summarize(greater, ties, cutoffs)
    metrics["coverage@10"] = float(covered[1:].sum()) / max(n_items, 1)
    metrics["users"] = float(len(greater))
    return metrics


def batched(n: int, size: int) -> Iterable[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))

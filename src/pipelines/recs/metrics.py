"""Next-item evaluation: full-ranking HR@k and NDCG@k (pipelines.ranking) plus catalogue coverage.

Every item of the catalogue is a candidate (no sampled negatives: sampled metrics are 8-15x higher and
not comparable); ties are scored as their expectation, the rule of `pipelines.ranking`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pipelines.ranking import metrics_from_ranks, target_ranks

METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


def evaluate(
    score_batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    n_items: int,
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Metrics over batches of (scores [batch, n_items + 1], targets [batch], history-to-exclude or None).

    When a history matrix (item rows, 0 = padding) is given, those items score -inf, so they are never
    ranked. Also reports catalogue coverage: the share of items in at least one top-10.
    """
    greater_all, ties_all = [], []
    covered = torch.zeros(n_items + 1, dtype=torch.bool)
    for scores, targets, history in score_batches:
        scores[:, 0] = float("-inf")  # the batch's scores are ours to modify
        if history is not None:
            scores.scatter_(1, history, float("-inf"))
            scores[:, 0] = float("-inf")
        greater, ties = target_ranks(scores, targets)
        greater_all.append(greater)
        ties_all.append(ties)
        covered[scores.topk(min(10, n_items), dim=1).indices.flatten().cpu()] = True
    greater = np.concatenate(greater_all) if greater_all else np.zeros(0, np.int64)
    ties = np.concatenate(ties_all) if ties_all else np.zeros(0, np.int64)
    out = metrics_from_ranks(greater, ties, None, metrics)
    out["coverage@10"] = float(covered[1:].sum()) / max(n_items, 1)
    out["users"] = float(len(greater))
    return out


def batched(n: int, size: int) -> Iterable[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))

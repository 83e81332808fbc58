"""Popularity: the baseline every run reports beside the model, on the same split."""

from __future__ import annotations

import numpy as np

from pipelines.recs.sequences import Sequences


def popularity(train: Sequences, n_items: int) -> np.ndarray:
    """Weighted interaction counts per embedding row ([n_items + 1]; row 0, padding, is -inf)."""
    counts = np.bincount(train.items, weights=train.weights, minlength=n_items + 1).astype(np.float32)
    counts[0] = -np.inf
    return counts

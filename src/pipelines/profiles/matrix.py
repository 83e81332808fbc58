"""Users x items interactions as a sparse matrix: events weighted by type and recency, as of a date.

The matrix is the only input the VAE sees. It is built from an as-of read, so a backfill never sees a
later event, and it stays sparse end to end (CSR): memory grows with events, not with users x items.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from pipelines.warehouse.reads import day_bounds

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.profiles.config import ProfileConfig

_SECONDS_PER_DAY = 86_400.0
# Knuth's multiplicative hash: a stable, well-mixed function of user_id (Python's hash() is salted).
_HASH_MULTIPLIER = np.uint64(2_654_435_761)


@dataclass(frozen=True)
class Interactions:
    """`matrix[u, i]`: weighted interactions of user `user_ids[u]` with item `item_ids[i]` (CSR, float32)."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray  # int64, sorted
    item_ids: np.ndarray  # int64, sorted for a fresh vocabulary; the champion's order when aligned

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    def rows(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.matrix[mask], self.user_ids[mask], self.item_ids)


def window_start(as_of: dt.date, config: ProfileConfig) -> dt.date:
    """First day of the history window that ends with `as_of` (inclusive)."""
    return as_of - dt.timedelta(days=config.history_days - 1)


def build_interactions(
    events: pd.DataFrame, as_of: dt.date, config: ProfileConfig, *, item_ids: np.ndarray | None = None
) -> Interactions:
    """Weight and sum the events of the window ending with `as_of` into a CSR matrix.

    `events` needs user_id, item_id, event_type, event_ts (UTC). Events after `as_of` are ignored, so
    one read serves several dates. With `item_ids` (a model's vocabulary) the columns follow it and
    events on other items are dropped; without it the vocabulary is every item seen in the window.
    Users appear only when they keep at least one weighted event.
    """
    start, _ = day_bounds(window_start(as_of, config))
    _, end = day_bounds(as_of)
    import pandas as pd

    ts = pd.to_datetime(events["event_ts"], utc=True)  # an empty read comes back untyped
    keep = ((ts >= start) & (ts < end)).to_numpy()
    frame = events.loc[keep]
    type_weight = frame["event_type"].map(config.event_weights).fillna(0.0).to_numpy(dtype=np.float64)
    age_days = (end - ts[keep]).dt.total_seconds().to_numpy(dtype=np.float64) / _SECONDS_PER_DAY
    weight = type_weight * np.exp2(-age_days / config.recency_half_life_days)
    users = frame["user_id"].to_numpy(dtype=np.int64)
    items = frame["item_id"].to_numpy(dtype=np.int64)
    item_ids = np.unique(items[weight > 0]) if item_ids is None else np.asarray(item_ids, dtype=np.int64)
    col = positions(item_ids, items)
    known = (col >= 0) & (weight > 0)
    users, col, weight = users[known], col[known], weight[known]
    user_ids, row = np.unique(users, return_inverse=True)
    matrix = sp.csr_matrix(
        (weight.astype(np.float32), (row, col)), shape=(len(user_ids), len(item_ids)), dtype=np.float32
    )
    matrix.sum_duplicates()
    return Interactions(matrix, user_ids, item_ids)


def positions(vocabulary: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in `vocabulary` (any order), -1 where absent."""
    if len(vocabulary) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    order = np.argsort(vocabulary, kind="stable")
    ranked = vocabulary[order]
    where = np.clip(np.searchsorted(ranked, values), 0, len(ranked) - 1)
    return np.where(ranked[where] == values, order[where], -1)


def align_columns(source: Interactions, item_ids: np.ndarray) -> Interactions:
    """The same users with columns re-indexed to another vocabulary; entries of unknown items dropped."""
    target = positions(np.asarray(item_ids, dtype=np.int64), source.item_ids)
    coo = source.matrix.tocoo()
    new_col = target[coo.col]
    keep = new_col >= 0
    matrix = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], new_col[keep])), shape=(source.n_users, len(item_ids)), dtype=np.float32
    )
    return Interactions(matrix, source.user_ids, np.asarray(item_ids, dtype=np.int64))


def category_matrix(item_ids: np.ndarray, item_category: pd.Series) -> tuple[sp.csr_matrix, list[str]]:
    """One-hot [n_items, n_categories] for the item vocabulary (the coarse view) and the category names.

    `item_category` maps item_id -> category; an item missing from it gets the category 'unknown'.
    """
    categories = item_category.reindex(item_ids).fillna("unknown").astype(str).to_numpy()
    names, codes = np.unique(categories, return_inverse=True)
    onehot = sp.csr_matrix(
        (np.ones(len(item_ids), np.float32), (np.arange(len(item_ids)), codes)), shape=(len(item_ids), len(names))
    )
    return onehot, [str(n) for n in names]


def heldout_users(user_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the evaluation users: a fixed hash of user_id, the same on every date."""
    mixed = (user_ids.astype(np.uint64) * _HASH_MULTIPLIER) % np.uint64(1 << 32)
    return (mixed.astype(np.float64) / float(1 << 32)) < fraction

"""Users x items interactions as a sparse matrix: events weighted by type and recency, as of a date.

The matrix is the only input the VAE sees. It is built from the pairs of an as-of state (`profiles.state`),
so a backfill never sees a later event, and it stays sparse end to end (CSR): memory grows with (user, item)
pairs, not with users x items.
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
    from pipelines.profiles.state import PairState

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


def event_weights(events: pd.DataFrame, as_of: dt.date, config: ProfileConfig) -> PairState:
    """The definition of the input: each event of the window ending with `as_of` weighted by its type and
    halved every `recency_half_life_days` of age at the end of `as_of`, summed per (user, item) in float64.

    The task reads the same weights from `profiles.state` (exact integer sums kept by PostgreSQL); in-memory
    benchmarks and tests weigh generated events with this. `events` needs user_id, item_id, event_type,
    event_ts (UTC); events after `as_of` are ignored.
    """
    import pandas as pd

    from pipelines.profiles.state import PairState

    start, _ = day_bounds(window_start(as_of, config))
    _, end = day_bounds(as_of)
    ts = pd.to_datetime(events["event_ts"], utc=True)  # an empty read comes back untyped
    type_weight = events["event_type"].map(config.event_weights).fillna(0.0).to_numpy(dtype=np.float64)
    keep = ((ts >= start) & (ts < end)).to_numpy() & (type_weight > 0)
    age_days = (end - ts[keep]).dt.total_seconds().to_numpy(dtype=np.float64) / _SECONDS_PER_DAY
    weight = type_weight[keep] * np.exp2(-age_days / config.recency_half_life_days)
    users, items = events["user_id"].to_numpy(np.int64)[keep], events["item_id"].to_numpy(np.int64)[keep]
    user_ids, user_row = np.unique(users, return_inverse=True)
    item_ids, item_col = np.unique(items, return_inverse=True)
    codes, where = np.unique(user_row * max(len(item_ids), 1) + item_col, return_inverse=True)
    keys = np.stack([user_ids[codes // max(len(item_ids), 1)], item_ids[codes % max(len(item_ids), 1)]], axis=1)
    last = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, where, ts[keep].dt.tz_convert(None).to_numpy("datetime64[us]").view(np.int64))
    return PairState(
        as_of,
        keys[:, 0].copy(),
        keys[:, 1].copy(),
        np.bincount(where, weights=weight, minlength=len(keys)),
        np.bincount(where, minlength=len(keys)).astype(np.int32),
        last.view("datetime64[us]"),
    )


def build_interactions(pairs: PairState, *, item_ids: np.ndarray | None = None) -> Interactions:
    """The CSR matrix of the pairs' weights (float32).

    With `item_ids` (a model's vocabulary) the columns follow it and pairs of other items are dropped;
    without it the vocabulary is every item with a positive weight. Users appear only when they keep at
    least one positive weight.
    """
    users, items, weight = pairs.user_id, pairs.item_id, pairs.weight
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

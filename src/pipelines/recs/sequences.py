"""Users' interaction sequences, the stable item-id mapping, and the leave-one-out split.

Sequences are stored CSR-style (offsets into one flat array) so a million users cost a few arrays, not a
million Python lists. Item index 0 is padding; index i >= 1 is `vocab.item_ids[i - 1]`. The mapping only
ever grows (new items are appended), and it is saved inside every checkpoint, so a later run maps the
same item to the same embedding row and warm starts need no remapping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemVocab:
    """External item ids in embedding-row order (row = position + 1; row 0 is padding)."""

    item_ids: np.ndarray  # int64 [n_items]

    @property
    def size(self) -> int:
        return len(self.item_ids)

    def extended(self, candidates: np.ndarray) -> ItemVocab:
        """This mapping plus the unseen `candidates`, appended in ascending id order (deterministic)."""
        new = np.setdiff1d(np.unique(candidates.astype(np.int64)), self.item_ids, assume_unique=True)
        return ItemVocab(np.concatenate([self.item_ids, new]))

    def encode(self, external: np.ndarray) -> np.ndarray:
        """Embedding rows of external ids; 0 for ids the mapping does not know."""
        external = np.asarray(external, dtype=np.int64)
        if self.size == 0:
            return np.zeros(len(external), dtype=np.int64)
        order = np.argsort(self.item_ids, kind="stable")
        sorted_ids = self.item_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, external), 0, self.size - 1)
        return np.where(sorted_ids[pos] == external, order[pos] + 1, 0).astype(np.int64)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        return self.item_ids[rows - 1]


@dataclass(frozen=True)
class Sequences:
    """Per-user item sequences in time order: user u's items are items[offsets[u]:offsets[u + 1]]."""

    user_ids: np.ndarray  # int64 [n_users]
    offsets: np.ndarray  # int64 [n_users + 1]
    items: np.ndarray  # int64 [n_events], embedding rows (>= 1)
    weights: np.ndarray  # float32 [n_events], loss weight of each event as a target

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.user_ids)

    def select(self, mask: np.ndarray) -> Sequences:
        """The users where `mask` is true."""
        return _from_ranges(self, np.flatnonzero(mask), self.offsets[:-1][mask], self.offsets[1:][mask])

    def trimmed(self, drop_last: int) -> Sequences:
        """Each sequence without its last `drop_last` items (users left with nothing are dropped)."""
        starts, ends = self.offsets[:-1], self.offsets[1:] - drop_last
        keep = ends > starts
        return _from_ranges(self, np.flatnonzero(keep), starts[keep], ends[keep])

    def last(self) -> np.ndarray:
        """The last item of every sequence."""
        return self.items[self.offsets[1:] - 1]


def _from_ranges(seqs: Sequences, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Sequences:
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # Flat index of every kept event: start of its range plus its position inside the range.
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Sequences(seqs.user_ids[rows], offsets, seqs.items[index], seqs.weights[index])


def from_lists(user_ids: np.ndarray, sequences: list[np.ndarray], weights: list[np.ndarray] | None = None) -> Sequences:
    """Build from per-user arrays of embedding rows (benchmarks and tests)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate(sequences).astype(np.int64) if sequences else np.zeros(0, np.int64)
    flat_w = np.concatenate(weights).astype(np.float32) if weights else np.ones(len(items), np.float32)
    return Sequences(np.asarray(user_ids, dtype=np.int64), offsets, items, flat_w)


def from_events(
    events: pd.DataFrame, vocab: ItemVocab, event_weights: dict[str, float], *, collapse_repeats: bool = True
) -> Sequences:
    """Sequences from time-ordered events (user_id, item_id, event_type); unknown items are dropped.

    With `collapse_repeats`, consecutive events of one user on the same item count once (the last one).
    """
    rows = vocab.encode(events["item_id"].to_numpy(np.int64))
    weights = events["event_type"].map(event_weights).to_numpy(np.float32)
    keep = (rows > 0) & ~np.isnan(weights)
    users = events["user_id"].to_numpy(np.int64)[keep]
    rows, weights = rows[keep], weights[keep]
    order = np.argsort(users, kind="stable")  # stable: keeps each user's time order
    users, rows, weights = users[order], rows[order], weights[order]
    if collapse_repeats:
        # cart -> purchase of one item is one step of interest, not two: keep the last event of such a run.
        last_of_run = np.ones(len(users), dtype=bool)
        last_of_run[:-1] = (users[1:] != users[:-1]) | (rows[1:] != rows[:-1])
        users, rows, weights = users[last_of_run], rows[last_of_run], weights[last_of_run]
    user_ids, starts = np.unique(users, return_index=True)
    offsets = np.concatenate([starts, [len(users)]]).astype(np.int64)
    return Sequences(user_ids, offsets, rows, weights)


@dataclass(frozen=True)
class LeaveOneOut:
    """Last item = test, second-to-last = validation, the rest = training (users with >= 3 items).

    Users with 2 items contribute one training pair and are not evaluated; users with 1 item train nothing.
    """

    train: Sequences
    train_valid: Sequences  # everything before the test item: the refit's training data
    valid_input: Sequences
    valid_target: np.ndarray
    test_input: Sequences
    test_target: np.ndarray


def leave_one_out(seqs: Sequences) -> LeaveOneOut:
    evaluable = seqs.lengths >= 3
    short = seqs.select(~evaluable)
    long = seqs.select(evaluable)
    train = _concat(long.trimmed(2), short)
    valid_full = long.trimmed(1)
    return LeaveOneOut(
        train=train,
        train_valid=_concat(valid_full, short),
        valid_input=long.trimmed(2),
        valid_target=valid_full.last(),
        test_input=valid_full,
        test_target=long.last(),
    )


def _concat(a: Sequences, b: Sequences) -> Sequences:
    return Sequences(
        np.concatenate([a.user_ids, b.user_ids]),
        np.concatenate([a.offsets, a.offsets[-1] + b.offsets[1:]]),
        np.concatenate([a.items, b.items]),
        np.concatenate([a.weights, b.weights]),
    )


def pad_left(seqs: Sequences, rows: np.ndarray, max_len: int, *, drop_last: int = 0, skip_first: int = 0) -> np.ndarray:
    """[len(rows), max_len] matrix of the last `max_len` items of each chosen sequence, left-padded with 0.

    `drop_last`/`skip_first` shift the window, so (drop_last=1) and (skip_first=1) give aligned
    inputs and next-item targets.
    """
    starts = seqs.offsets[rows] + skip_first
    ends = seqs.offsets[rows + 1] - drop_last
    starts = np.maximum(starts, ends - max_len)
    lengths = np.maximum(ends - starts, 0)
    out = np.zeros((len(rows), max_len), dtype=np.int64)
    # Column of each copied event: right-aligned, so the last item always sits at column max_len - 1.
    row_idx = np.repeat(np.arange(len(rows)), lengths)
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row_idx, max_len - np.repeat(lengths, lengths) + within] = seqs.items[np.repeat(starts, lengths) + within]
    return out


def pad_left_weights(seqs: Sequences, rows: np.ndarray, max_len: int, *, skip_first: int = 0) -> np.ndarray:
    """Like `pad_left` for the per-event weights (0 where padded)."""
    weighted = Sequences(seqs.user_ids, seqs.offsets, np.arange(len(seqs.items)), seqs.weights)
    index = pad_left(weighted, rows, max_len, skip_first=skip_first)
    valid = pad_left(seqs, rows, max_len, skip_first=skip_first) > 0
    return np.where(valid, seqs.weights[index], 0.0).astype(np.float32)

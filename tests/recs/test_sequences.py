"""Item mapping, sequences, leave-one-out without leakage, padding windows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.recs.sequences import ItemVocab, from_events, from_lists, leave_one_out, pad_left


def test_vocab_is_stable_and_only_grows() -> None:
    vocab = ItemVocab(np.array([50, 10, 30]))
    grown = vocab.extended(np.array([30, 20, 60, 20]))
    assert grown.item_ids.tolist() == [50, 10, 30, 20, 60]  # old rows untouched, new ones appended sorted
    assert grown.encode(np.array([10, 60, 99])).tolist() == [2, 5, 0]  # unknown -> 0
    assert grown.decode(np.array([1, 4])).tolist() == [50, 20]


def test_from_events_keeps_time_order_and_drops_unknown_items_and_types() -> None:
    events = pd.DataFrame(
        {
            "user_id": [2, 1, 2, 1, 1],
            "item_id": [10, 20, 30, 99, 10],
            "event_type": ["purchase", "cart", "purchase", "purchase", "view"],
        }
    )
    vocab = ItemVocab(np.array([10, 20, 30]))
    seqs = from_events(events, vocab, {"purchase": 1.0, "cart": 0.5})
    assert seqs.user_ids.tolist() == [1, 2]
    assert seqs.items[seqs.offsets[0] : seqs.offsets[1]].tolist() == [2]  # 99 unknown, view not weighted
    assert seqs.items[seqs.offsets[1] : seqs.offsets[2]].tolist() == [1, 3]
    assert seqs.weights.tolist() == [0.5, 1.0, 1.0]


def test_leave_one_out_never_trains_on_test_or_validation_items() -> None:
    seqs = from_lists(np.array([7, 8, 9]), [np.array([1, 2, 3, 4, 5]), np.array([6, 7]), np.array([8, 9, 10])])
    split = leave_one_out(seqs)
    assert split.test_target.tolist() == [5, 10]
    assert split.valid_target.tolist() == [4, 9]
    train = {
        int(u): split.train.items[a:b].tolist()
        for u, a, b in zip(split.train.user_ids, split.train.offsets[:-1], split.train.offsets[1:], strict=True)
    }
    assert train == {7: [1, 2, 3], 9: [8], 8: [6, 7]}  # the 2-item user trains, is not evaluated
    assert split.valid_input.items.tolist() == [1, 2, 3, 8]
    assert split.test_input.items.tolist() == [1, 2, 3, 4, 8, 9]
    assert 5 not in split.train_valid.items and 10 not in split.train_valid.items


def test_pad_left_windows_are_right_aligned_and_shift_for_targets() -> None:
    seqs = from_lists(np.array([1, 2]), [np.array([1, 2, 3, 4]), np.array([5])])
    rows = np.array([0, 1])
    assert pad_left(seqs, rows, 3).tolist() == [[2, 3, 4], [0, 0, 5]]
    assert pad_left(seqs, rows, 3, drop_last=1).tolist() == [[1, 2, 3], [0, 0, 0]]
    assert pad_left(seqs, rows, 3, skip_first=1).tolist() == [[2, 3, 4], [0, 0, 0]]


def test_cart_then_purchase_of_one_item_is_one_step() -> None:
    events = pd.DataFrame(
        {"user_id": [1, 1, 1, 1], "item_id": [10, 10, 20, 10], "event_type": ["cart", "purchase", "cart", "cart"]}
    )
    vocab = ItemVocab(np.array([10, 20]))
    seqs = from_events(events, vocab, {"purchase": 1.0, "cart": 0.5})
    assert seqs.items.tolist() == [1, 2, 1] and seqs.weights.tolist() == [1.0, 0.5, 0.5]
    assert from_events(events, vocab, {"purchase": 1.0, "cart": 0.5}, collapse_repeats=False).items.tolist() == [
        1,
        1,
        2,
        1,
    ]

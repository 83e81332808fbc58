"""SASRec model: shapes, causal masking, padding, a batch it can overfit, warm-start growth."""

from __future__ import annotations

import torch

from pipelines.recs.model import SASRec, SASRecConfig, attention_mask, grow_items


def _model(**overrides: object) -> SASRec:
    torch.manual_seed(0)
    cfg = SASRecConfig(n_items=30, max_len=8, hidden=16, blocks=2, heads=2, dropout=0.0, **overrides)
    return SASRec(cfg).eval()


def test_shapes_of_encode_score_and_loss() -> None:
    model = _model()
    inputs = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert model.encode(inputs).shape == (2, 5, 16)
    scores = model.score_last(inputs)
    assert scores.shape == (2, 31)
    assert torch.isneginf(scores[:, 0]).all()  # padding is never recommended
    targets = torch.tensor([[0, 0, 4, 5, 6], [2, 3, 4, 5, 6]])
    loss = model.loss(inputs, targets, torch.ones(2, 5))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(model.loss(inputs, targets, torch.ones(2, 5), negatives=7))


def test_no_position_sees_a_later_item() -> None:
    for norm_first in (True, False):
        model = _model(norm_first=norm_first)
        a = torch.tensor([[1, 2, 3, 4, 5, 6]])
        b = torch.tensor([[1, 2, 3, 9, 8, 7]])  # same prefix, different later items
        ha, hb = model.encode(a), model.encode(b)
        torch.testing.assert_close(ha[:, :3], hb[:, :3])
        assert not torch.allclose(ha[:, 3:], hb[:, 3:])


def test_padding_does_not_change_the_real_positions() -> None:
    model = _model()
    short = model.encode(torch.tensor([[4, 5, 6]]))
    padded = model.encode(torch.tensor([[0, 0, 4, 5, 6]]))
    # Right-aligned: the same items sit at the same (last) positions, and padded keys are masked out.
    torch.testing.assert_close(short, padded[:, 2:])


def test_attention_mask_is_causal_and_never_empty() -> None:
    mask = attention_mask(torch.tensor([[0, 0, 1, 2]]))[0, 0]
    assert not mask.triu(1).any()  # nothing after the query
    assert mask.any(dim=1).all()  # every row attends somewhere (no NaN)
    assert not mask[3, :2].any()  # real positions ignore padding


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=12, max_len=6, hidden=32, blocks=1, heads=1, dropout=0.0))
    inputs = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    targets = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 9, 10, 11]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        loss = model.loss(inputs, targets, torch.ones(2, 5))
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.1
    assert model.score_last(inputs).argmax(dim=1).tolist() == [6, 11]


def test_grow_items_keeps_old_rows_and_adds_fresh_ones() -> None:
    model = _model()
    grown = grow_items(model.state_dict(), 35, seed=1)
    assert grown["item_emb.weight"].shape == (36, 16)
    torch.testing.assert_close(grown["item_emb.weight"][:31], model.state_dict()["item_emb.weight"])
    bigger = SASRec(SASRecConfig(n_items=35, max_len=8, hidden=16, blocks=2, heads=2, dropout=0.0))
    bigger.load_state_dict(grown)

"""SASRec model: shapes, causal masking, padding, a batch it can overfit, warm-start growth."""

from __future__ import annotations

import torch

from pipelines.recs.config import RecsConfig
from pipelines.recs.model import SASRec, SASRecConfig, attention_mask, grow_items

TINY = {"max_len": 8, "hidden": 16, "blocks": 2, "heads": 2, "dropout": 0.0, "repeat_bias": False}


def _config(n_items: int = 30, **overrides: object) -> SASRecConfig:
    return SASRecConfig.from_task_config(RecsConfig(**(TINY | overrides)), n_items)  # type: ignore[arg-type]


def _model(**overrides: object) -> SASRec:
    torch.manual_seed(0)
    return SASRec(_config(**overrides)).eval()


def test_the_network_follows_the_task_config() -> None:
    cfg = SASRecConfig.from_task_config(RecsConfig(), n_items=5)
    task = RecsConfig()
    assert (cfg.max_len, cfg.hidden, cfg.blocks, cfg.heads, cfg.dropout, cfg.norm_first, cfg.repeat_bias) == (
        task.max_len, task.hidden, task.blocks, task.heads, task.dropout, task.norm_first, task.repeat_bias,
    )  # fmt: skip
    assert SASRecConfig(**cfg.to_dict()) == cfg


def test_a_checkpoint_saved_before_the_repeat_bias_rebuilds_without_it() -> None:
    saved = _config().to_dict()
    del saved["repeat_bias"]
    assert SASRec(SASRecConfig(**saved)).repeat is None


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
    model = SASRec(_config(12, max_len=6, hidden=32, blocks=1, heads=1))
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
    bigger = SASRec(_config(35))
    bigger.load_state_dict(grown)


def _with_repeat_bias() -> SASRec:
    model = _model(repeat_bias=True)
    with torch.no_grad():
        model.repeat.copy_(torch.arange(8, dtype=torch.float32) + 1.0)  # distance d -> bias d + 1
    return model


@torch.no_grad()
def test_repeat_bias_adds_to_items_in_the_window_by_distance() -> None:
    model = _with_repeat_bias()
    inputs = torch.tensor([[0, 7, 3, 7, 5]])  # 7 seen 1 and 3 steps before the end, 3 at 2, 5 at 0
    plain = model.encode(inputs)[:, -1] @ model.item_emb.weight.T
    delta = model.score_last(inputs)[0, 1:] - plain[0, 1:]
    expected = torch.zeros(30)
    expected[5 - 1], expected[3 - 1], expected[7 - 1] = 1.0, 3.0, 2.0 + 4.0  # a repeated item adds both
    torch.testing.assert_close(delta, expected)


def _reference_loss(model: SASRec, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Cross-entropy written position by position, the repeat bias added by hand."""
    hidden = model.encode(inputs)
    losses = []
    for b in range(inputs.shape[0]):
        for t in range(inputs.shape[1]):
            if targets[b, t] == 0:
                continue
            logits = model.item_emb.weight[1:] @ hidden[b, t]  # [n_items], item row c + 1 at c
            for s in range(t + 1):
                if inputs[b, s] > 0:
                    logits = logits + (torch.arange(1, 31) == inputs[b, s]) * model.repeat[t - s]
            losses.append(torch.nn.functional.cross_entropy(logits.unsqueeze(0), (targets[b, t] - 1).view(1)))
    return float(torch.stack(losses).mean())


@torch.no_grad()
def test_repeat_bias_enters_the_loss() -> None:
    model = _with_repeat_bias()
    inputs = torch.tensor([[0, 4, 9, 4, 2], [3, 3, 8, 1, 6]])
    targets = torch.tensor([[0, 9, 4, 2, 9], [3, 8, 1, 6, 3]])  # repeats of earlier items among the targets
    weights = (targets > 0).float()
    assert abs(float(model.loss(inputs, targets, weights)) - _reference_loss(model, inputs, targets)) < 1e-4


def test_repeat_bias_learns_that_history_items_do_not_come_back() -> None:
    torch.manual_seed(0)
    model = SASRec(_config(40, max_len=6, blocks=1, heads=1, repeat_bias=True))
    inputs = torch.randint(1, 41, (64, 5))
    targets = torch.randint(1, 41, (64, 5))
    fresh = (targets.unsqueeze(2) != inputs.unsqueeze(1)).all(2)  # target not among the items so far
    targets = targets * fresh
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        model.loss(inputs, targets, torch.ones(64, 5)).backward()
        optimizer.step()
    assert (model.repeat[:5] < -0.3).all()

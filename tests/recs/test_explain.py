"""Leave-one-out reasons: the edited windows, their scores against plain rescoring, and every written row's reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Engine

from pipelines import modeltask
from pipelines.recs import explain
from pipelines.recs.model import SASRec, SASRecConfig
from pipelines.recs.task import RecsRecipe
from pipelines.settings import Settings
from pipelines.warehouse.reads import events_as_of
from tests.recs.store import last_day, write_events, write_segment, write_store
from tests.recs.test_task import TINY


def _model(seed: int = 0, repeat_bias: bool = True) -> SASRec:
    torch.manual_seed(seed)
    model = SASRec(SASRecConfig(30, 6, 16, 2, 2, 0.0, True, repeat_bias))
    if model.repeat is not None:
        torch.nn.init.normal_(model.repeat, std=0.5)  # untrained biases are 0: make them count
    return model.eval()


# Left-padded windows: full, partly padded, a repeat, a single item.
WINDOWS = torch.tensor([[3, 7, 1, 9, 4, 2], [0, 0, 5, 8, 5, 11], [0, 0, 0, 0, 0, 6]])


def test_without_each_drops_one_column_and_keeps_the_window_right_aligned() -> None:
    edited = explain.without_each(WINDOWS, torch.arange(6))
    assert edited.shape == (3, 6, 6)
    assert edited[0, 0].tolist() == [0, 7, 1, 9, 4, 2]
    assert edited[0, 3].tolist() == [0, 3, 7, 1, 4, 2]
    assert edited[0, 5].tolist() == [0, 3, 7, 1, 9, 4]
    assert edited[1, 4].tolist() == [0, 0, 0, 5, 8, 11]
    assert edited[2, 5].tolist() == [0, 0, 0, 0, 0, 0]
    assert explain.without_each(WINDOWS, torch.tensor([3, 5]))[0].tolist() == [
        edited[0, 3].tolist(),
        edited[0, 5].tolist(),
    ]


@pytest.mark.parametrize("norm_first", [True, False])
def test_last_only_encoding_equals_the_last_position_of_the_full_one(norm_first: bool) -> None:
    torch.manual_seed(3)
    model = SASRec(SASRecConfig(30, 6, 16, 2, 2, 0.0, norm_first, True)).eval()
    with torch.no_grad():
        assert torch.allclose(model.encode(WINDOWS, last_only=True), model.encode(WINDOWS)[:, -1:], atol=1e-5)


def test_score_items_equals_score_last_of_those_items() -> None:
    model = _model()
    items = torch.tensor([[1, 2, 30], [5, 6, 8], [6, 29, 11]])
    with torch.no_grad():
        expected = model.score_last(WINDOWS).gather(1, items)
        assert torch.allclose(model.score_items(WINDOWS, items), expected, atol=1e-5)


@pytest.mark.parametrize("chunk_tokens", [1, 1 << 18])
def test_removal_scores_equal_rescoring_the_history_without_that_item(
    monkeypatch: pytest.MonkeyPatch, chunk_tokens: int
) -> None:
    monkeypatch.setattr(explain, "CHUNK_TOKENS", chunk_tokens)  # one user per chunk, then all at once
    model = _model(seed=1)
    items = torch.tensor([[1, 2], [5, 13], [6, 20]])
    got = explain.removal_scores(model, WINDOWS, items, torch.arange(6))
    for user, window in enumerate(WINDOWS.tolist()):
        for column, item in enumerate(window):
            if item == 0:
                assert torch.isinf(got[user, column]).all()
                continue
            kept = window[:column] + window[column + 1 :]
            shorter = torch.tensor([[0] + kept])  # what the user's history would have been without it
            with torch.no_grad():
                expected = model.score_last(shorter)[0, items[user]]
            assert torch.allclose(got[user, column], expected, atol=1e-5), (user, column)


@pytest.mark.parametrize("recent", [6, 3])
def test_drivers_are_the_recent_history_items_whose_removal_costs_most(recent: int) -> None:
    model = _model(seed=2, repeat_bias=False)
    items = torch.tensor([[10, 12], [3, 4], [7, 1]])
    found = explain.drivers(model, WINDOWS, items, recent=recent)
    scores = explain.removal_scores(model, WINDOWS, items, torch.arange(6))
    for user in range(3):
        for j in range(2):
            tried = scores[user, -recent:, j]
            assert torch.isfinite(tried).any()
            assert int(found[user, j]) == int(WINDOWS[user, 6 - recent + int(tried.argmin())])
    assert found[2].tolist() == [6, 6]  # one item: it is the reason for everything


@pytest.mark.integration
def test_every_written_row_has_a_reason_and_model_reasons_come_from_the_history(engine: Engine, tmp_path: Path) -> None:
    events = write_store(engine, extra_users=2)
    day = last_day(events)
    write_segment(engine, day, [1, 2, 121])
    # Events after the date must never be named: one purchase of an item nobody else has is written the day after.
    later = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    write_events(engine, pd.DataFrame({"user_id": [3], "item_id": [40], "event_type": "purchase", "event_ts": [later]}))
    modeltask.run(RecsRecipe(TINY), engine, day, Settings(state_dir=tmp_path, device="cpu"), device=torch.device("cpu"))

    with engine.connect() as conn:
        recs = pd.read_sql_query(
            sa.text("SELECT * FROM recommendations WHERE as_of_date = :d"), conn, params={"d": day}
        )
    expected = {"model": "history_item", "segment_popularity": "popular_in_segment",
                "global_popularity": "popular_in_store"}  # fmt: skip
    assert (recs["reason_code"] == recs["source"].map(expected)).all()
    assert set(recs["source"]) == set(expected)
    assert recs.loc[recs["source"] != "model", "reason_item_id"].isna().all()

    model_rows = recs[recs["source"] == "model"]
    history = events_as_of(engine, day, event_types=["purchase"], columns=("user_id", "item_id"))
    seen = set(zip(history["user_id"], history["item_id"], strict=True))
    pairs = zip(model_rows["user_id"], model_rows["reason_item_id"].astype("int64"), strict=True)
    assert all(pair in seen for pair in pairs)

    # The planted chain i -> i + 10: the next item's reason is the last purchase for most users.
    last = events.groupby("user_id")["item_id"].last()
    top1 = model_rows[model_rows["rank"] == 1].set_index("user_id")
    follows = top1[top1["item_id"] == (last.reindex(top1.index) % 240) + 10]
    assert len(follows) > 50
    assert (follows["reason_item_id"] == last.reindex(follows.index)).mean() > 0.7

"""Why the Transformer recommended an item: the history item whose removal costs it the most score.

Leave-one-out attribution: for every position of a user's window, the window without that item (the
earlier items move up one step, as if it had never happened) is scored again, for the recommended items
only (`SASRec.score_items`). The driver of a recommended item is the position whose removal leaves it the
lowest score, i.e. the largest drop from the full history. Unlike a gradient it measures what removing
the item really does, which is what the faithfulness check (benchmarks/bench_explain.py) tests, and it
needs only forward passes: `width` edited copies of each window, scored in chunks of bounded size.
"""

from __future__ import annotations

import torch

from pipelines.recs.model import SASRec

REASON_HISTORY = "history_item"
REASON_SEGMENT = "popular_in_segment"
REASON_STORE = "popular_in_store"
# Tokens (users x edited windows x width) encoded at once: bounds the attention and activation memory.
CHUNK_TOKENS = 1 << 18


def without_each(window: torch.Tensor) -> torch.Tensor:
    """[batch, width] left-padded windows -> [batch, width, width]: copy j lacks the item at column j.

    Items before column j move one column right (the window stays right-aligned) and column 0 becomes
    padding; a copy for a padded column j is the window itself shifted, harmless and never chosen.
    """
    width = window.shape[1]
    col = torch.arange(width, device=window.device)
    source = torch.where(col.unsqueeze(1) >= col.unsqueeze(0), col.unsqueeze(0) - 1, col.unsqueeze(0))  # [j, p]
    edited = window[:, source.clamp(min=0)]  # [batch, width (j), width (p)]
    return edited.masked_fill(source < 0, 0)


@torch.no_grad()
def removal_scores(model: SASRec, window: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Scores of `items` [batch, k] after removing each column of `window` [batch, width]: [batch, width, k].

    Padded columns score +inf, so that `argmin` over columns never picks them.
    """
    batch, width = window.shape
    k = items.shape[1]
    out = torch.empty((batch, width, k), dtype=torch.float32, device=window.device)
    users = max(1, CHUNK_TOKENS // (width * width))
    for start in range(0, batch, users):
        part = slice(start, min(start + users, batch))
        edited = without_each(window[part]).reshape(-1, width)  # [users * width, width]
        wanted = items[part].repeat_interleave(width, dim=0)  # [users * width, k]
        out[part] = model.score_items(edited, wanted).float().view(-1, width, k)
    return out.masked_fill((window == 0).unsqueeze(-1), float("inf"))


def drivers(model: SASRec, window: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Item row of the driving history item of each recommended item: [batch, width], [batch, k] -> [batch, k]."""
    column = removal_scores(model, window, items).argmin(dim=1)  # [batch, k]
    return window.gather(1, column)

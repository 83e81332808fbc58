"""Why the Transformer recommended an item: the history item whose removal costs it the most score.

Leave-one-out attribution: for every position of a user's window, the window without that item (the
earlier items move up one step, as if it had never happened) is scored again, for the recommended items
only (`SASRec.score_items`). The driver of a recommended item is the position whose removal leaves it the
lowest score, i.e. the largest drop from the full history. Unlike a gradient it measures what removing
the item really does, which is what the faithfulness check (benchmarks/bench_explain.py) tests, and it
needs only forward passes: one edited copy of the window per candidate, scored in chunks of bounded size.
Candidates are the `RECENT` latest items: a copy costs a whole window, so trying all of a long history
would cost width^2 tokens per user, for the same answer almost always (ADR 0013).
"""

from __future__ import annotations

import torch

from pipelines.recs.model import SASRec

REASON_HISTORY = "history_item"
REASON_SEGMENT = "popular_in_segment"
REASON_STORE = "popular_in_store"
# Tokens (users x edited windows x width) encoded at once: bounds the attention and activation memory.
CHUNK_TOKENS = 1 << 18
RECENT = 10  # history items tried as the reason, the latest ones (ADR 0013)


def without_each(window: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """[batch, width] left-padded windows -> [batch, len(columns), width]: copy c lacks the item at columns[c].

    Items before the removed column move one column right (the window stays right-aligned) and column 0
    becomes padding; a copy for a padded column is the window itself shifted, harmless and never chosen.
    """
    col = torch.arange(window.shape[1], device=window.device)
    removed = columns.unsqueeze(1)  # [copies, 1]
    source = torch.where(col.unsqueeze(0) <= removed, col.unsqueeze(0) - 1, col.unsqueeze(0))  # [copies, width]
    edited = window[:, source.clamp(min=0)]  # [batch, copies, width]
    return edited.masked_fill(source < 0, 0)


@torch.no_grad()
def removal_scores(model: SASRec, window: torch.Tensor, items: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Scores of `items` [batch, k] after removing each of `columns` of `window` [batch, width]:
    [batch, len(columns), k]. Padded columns score +inf, so that `argmin` never picks them.
    """
    batch, width = window.shape
    k, copies = items.shape[1], len(columns)
    out = torch.empty((batch, copies, k), dtype=torch.float32, device=window.device)
    users = max(1, CHUNK_TOKENS // (copies * width))
    for start in range(0, batch, users):
        part = slice(start, min(start + users, batch))
        edited = without_each(window[part], columns).reshape(-1, width)  # [users * copies, width]
        wanted = items[part].repeat_interleave(copies, dim=0)  # [users * copies, k]
        out[part] = model.score_items(edited, wanted).float().view(-1, copies, k)
    return out.masked_fill((window[:, columns] == 0).unsqueeze(-1), float("inf"))


@torch.no_grad()
def drivers(model: SASRec, window: torch.Tensor, items: torch.Tensor, recent: int = RECENT) -> torch.Tensor:
    """Item row of the driving history item of each recommended item: [batch, width], [batch, k] -> [batch, k].

    The driver is looked for among the `recent` latest items of each window.
    """
    width = window.shape[1]
    columns = torch.arange(max(0, width - recent), width, device=window.device)
    column = columns[removal_scores(model, window, items, columns).argmin(dim=1)]  # [batch, k]
    return window.gather(1, column)

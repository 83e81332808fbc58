"""Top-K for every user: the champion's scores in batches, popularity for users without a history.

Scores come one batch of users at a time (matrix multiply + `topk`), each row with its reason (the driving
history item for the model, pipelines.recs.explain; the fallback's kind otherwise), and rows leave as one
DataFrame per batch, so memory is bounded by the batch, never by users x items; the caller streams the
frames into `replace_partition`, which COPYs them inside one transaction.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.recs import explain
from pipelines.recs.metrics import batched
from pipelines.recs.model import SASRec
from pipelines.recs.sequences import ItemVocab, Sequences, pad_left

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def aligned(seqs: Sequences, user_ids: np.ndarray) -> Sequences:
    """`seqs` re-indexed to exactly `user_ids` (users it lacks get an empty sequence)."""
    pos = np.clip(np.searchsorted(seqs.user_ids, user_ids), 0, max(len(seqs) - 1, 0))
    found = (seqs.user_ids[pos] == user_ids) if len(seqs) else np.zeros(len(user_ids), dtype=bool)
    starts = np.where(found, seqs.offsets[pos], 0)
    ends = np.where(found, seqs.offsets[np.minimum(pos + 1, len(seqs))], 0)
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Sequences(np.asarray(user_ids, np.int64), offsets, seqs.items[index], seqs.weights[index])


def model_topk(
    model: SASRec,
    vocab: ItemVocab,
    history: Sequences,
    exclude: Sequences,
    *,
    top_k: int,
    batch_users: int,
    device: torch.device,
    unavailable: np.ndarray | None = None,
    explained: bool = True,
) -> Iterator[pd.DataFrame]:
    """Frames (user_id, rank, item_id, score, source, reason) for every user of `history` (non-empty).

    `exclude` is aligned with `history` (same users, same order): those items are never recommended, and
    neither are the embedding rows in `unavailable` (items gone from the catalogue since training).
    A user with fewer than `top_k` eligible items gets fewer rows. Each row names the history item that
    drove it (`explained=False` leaves the reason out: the benchmarks' cost baseline).
    """
    import pandas as pd

    max_len = model.cfg.max_len
    k = min(top_k, vocab.size)
    if device.type == "cpu":
        # float32 matrix products round differently with the batch's size and width, so the rows would depend
        # on which users share a batch; in float64 they do not, and any split into shards gives the same rows.
        model = copy.deepcopy(model).double()
    order = np.argsort(history.lengths, kind="stable")  # similar lengths together: narrow windows
    model.eval()
    for chunk in batched(len(history), batch_users):
        rows = order[chunk]
        width = int(min(max_len, history.lengths[rows].max()))
        window = torch.from_numpy(pad_left(history, rows, max_len)[:, -width:]).to(device)  # [batch, width]
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            scores = model.score_last(window).float()  # [batch, n_items + 1]
        longest = int(exclude.lengths[rows].max()) if len(rows) else 0
        if longest:
            scores.scatter_(1, torch.from_numpy(pad_left(exclude, rows, longest)).to(device), float("-inf"))
        scores[:, 0] = float("-inf")
        if unavailable is not None and len(unavailable):
            scores[:, torch.from_numpy(unavailable).to(device)] = float("-inf")
        values, index = scores.topk(k, dim=1)  # [batch, k]
        reasons = None
        if explained:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                reasons = explain.drivers(model, window, index).cpu().numpy()  # [batch, k] item rows
        values, index = values.cpu().numpy(), index.cpu().numpy()
        keep = np.isfinite(values)
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(history.user_ids[rows], k)[keep.ravel()],
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(rows))[keep.ravel()],
                "item_id": vocab.decode(index[keep]),
                "score": values[keep].astype(np.float32),
                "source": "model",
            }
        )
        if reasons is not None:
            frame["reason_code"] = explain.REASON_HISTORY
            frame["reason_item_id"] = vocab.decode(reasons[keep])
        yield frame


def popularity_topk(
    user_ids: np.ndarray,
    user_groups: np.ndarray,
    rankings: dict[int, tuple[np.ndarray, np.ndarray]],
    global_ranking: tuple[np.ndarray, np.ndarray],
    *,
    batch_users: int,
) -> Iterator[pd.DataFrame]:
    """Frames for users without a history: their segment's ranking, or the global one.

    `user_groups` holds each user's segment (-1: none); `rankings` maps a segment to (item ids, scores)
    already cut to top-K; segments without a ranking fall back to the global one.
    """
    import pandas as pd

    for rows in batched(len(user_ids), batch_users):
        parts = []
        groups = user_groups[rows]
        for group in np.unique(groups):
            members = user_ids[rows][groups == group]
            use_segment = int(group) in rankings
            items, scores = rankings[int(group)] if use_segment else global_ranking
            if not len(items):
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "user_id": np.repeat(members, len(items)),
                        "rank": np.tile(np.arange(1, len(items) + 1, dtype=np.int16), len(members)),
                        "item_id": np.tile(items, len(members)),
                        "score": np.tile(scores.astype(np.float32), len(members)),
                        "source": "segment_popularity" if use_segment else "global_popularity",
                        "reason_code": explain.REASON_SEGMENT if use_segment else explain.REASON_STORE,
                    }
                )
            )
        if parts:
            yield pd.concat(parts, ignore_index=True)


def ranking(counts: pd.Series, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-K item ids by weighted count (ties by item id, deterministic) and their share of the total."""
    if counts.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    frame = counts.rename("w").reset_index().sort_values(["w", "item_id"], ascending=[False, True]).head(top_k)
    total = float(counts.sum())
    return frame["item_id"].to_numpy(np.int64), (frame["w"].to_numpy(np.float64) / total).astype(np.float32)

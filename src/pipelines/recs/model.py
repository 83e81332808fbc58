"""SASRec-style causal self-attention recommender (Kang & McAuley, ICDM 2018).

Deliberate deviations from the paper, each for a measured reason (docs/benchmarks.md):
- trained with softmax cross-entropy over the whole catalogue, not one negative per position with binary
  cross-entropy: Klenitskiy & Vasilev (RecSys 2023) and our Beauty runs show the one-negative loss leaves
  most of the quality on the table;
- item embeddings are tied with the output layer (scores are dot products with the item table), so a new
  item needs one new row and nothing else;
- pre-LN blocks by default (a setting), GELU feed-forward, attention through `scaled_dot_product_attention`;
- a learned repeat bias (a setting): one scalar per recency, added to the score of every item already in the
  window at that distance. With tied embeddings the hidden state sits close to the items just seen, so
  without it the model spends its top ranks on them; on Beauty, where the next item is almost never a repeat,
  the top-10 lost a quarter of its NDCG that way (docs/benchmarks.md). Where repeats are common (cart then
  purchase) the bias learns to be positive instead. RepeatNet (Ren et al., AAAI 2019) models the same choice.
Sequences are left-padded and right-aligned: the most recent item always sits at the last position, so the
learned positional embedding means "k steps before now".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from pipelines.recs.config import RecsConfig


@dataclass(frozen=True)
class SASRecConfig:
    """What it takes to rebuild the network (saved in every checkpoint).

    New models come from `from_task_config`: RecsConfig holds the one set of defaults.
    """

    n_items: int  # catalogue size; embedding rows are n_items + 1 (row 0 = padding)
    max_len: int
    hidden: int
    blocks: int
    heads: int
    dropout: float
    norm_first: bool
    # Absent from checkpoints saved before the setting existed: those models were built without it.
    repeat_bias: bool = False

    @classmethod
    def from_task_config(cls, config: RecsConfig, n_items: int) -> SASRecConfig:
        """The network a run of `config` trains over `n_items` items."""
        return cls(
            n_items=n_items,
            max_len=config.max_len,
            hidden=config.hidden,
            blocks=config.blocks,
            heads=config.heads,
            dropout=config.dropout,
            norm_first=config.norm_first,
            repeat_bias=config.repeat_bias,
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[batch, seq, hidden] -> the same, or [batch, 1, hidden] for the last position's query only."""
        batch, length, hidden = x.shape
        # [batch, seq, 3, heads, head_dim] -> 3 x [batch, heads, seq, head_dim]
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        if last_only:
            q, mask = q[:, :, -1:], mask[:, :, -1:]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(batch, q.shape[2], hidden))  # [batch, queries, hidden]


class Block(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attn = CausalSelfAttention(cfg.hidden, cfg.heads, cfg.dropout)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden),
        )
        self.norm1 = nn.LayerNorm(cfg.hidden)
        self.norm2 = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """`last_only`: only the last position's output (its keys and values still come from every position)."""
        residual = x[:, -1:] if last_only else x
        if self.norm_first:
            x = residual + self.drop(self.attn(self.norm1(x), mask, last_only))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(residual + self.drop(self.attn(x, mask, last_only)))
        return self.norm2(x + self.drop(self.ffn(x)))


class SASRec(nn.Module):
    """Contract shared by trainer and evaluator: `loss(inputs, targets, weights)` and `score_last(inputs)`."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.blocks))
        self.final_norm = nn.LayerNorm(cfg.hidden) if cfg.norm_first else nn.Identity()
        # Score offset of an item seen d steps before the scored position, d = 0 .. max_len - 1.
        self.repeat = nn.Parameter(torch.zeros(cfg.max_len)) if cfg.repeat_bias else None
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def encode(self, inputs: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden state after each position: [batch, seq] item rows -> [batch, seq, hidden].

        `last_only`: [batch, 1, hidden], the last position only; the final block then skips the other
        positions' attention queries, projection and feed-forward, which scoring never reads.
        """
        length = inputs.shape[1]
        positions = torch.arange(self.cfg.max_len - length, self.cfg.max_len, device=inputs.device)
        x = self.item_emb(inputs) * self.cfg.hidden**0.5 + self.pos_emb(positions)
        x = self.emb_drop(x)
        x = x * (inputs > 0).unsqueeze(-1)
        mask = attention_mask(inputs)
        for depth, block in enumerate(self.blocks, start=1):
            x = block(x, mask, last_only and depth == len(self.blocks))
        return self.final_norm(x)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted next-item cross-entropy over the whole catalogue at every non-padded position."""
        valid = targets > 0
        hidden = self.encode(inputs)[valid]  # [n_positions, hidden]
        target = targets[valid]  # [n_positions]
        # Against rows 1.. only (padding is never a class), so class c is item row c + 1.
        logits = hidden @ self.item_emb.weight[1:].T  # [n_positions, n_items]
        if self.repeat is not None:
            rows, items, bias = self._seen(inputs, valid)
            # In place: the matmul's backward does not need its output, and a copy of [positions, items]
            # would double the memory traffic of the step.
            logits.index_put_((rows, items - 1), bias.to(logits.dtype), accumulate=True)
        losses = F.cross_entropy(logits.float(), target - 1, reduction="none")
        w = weights[valid]
        return (losses * w).sum() / w.sum()

    def score_last(self, inputs: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each sequence: [batch, seq] -> [batch, n_items + 1]."""
        hidden = self.encode(inputs, last_only=True)[:, -1]  # [batch, hidden]
        scores = hidden @ self.item_emb.weight.T
        if self.repeat is not None:
            # Column s of the window is length - 1 - s steps before the scored position; padding lands on row 0.
            distance = torch.arange(inputs.shape[1] - 1, -1, -1, device=inputs.device)
            scores.scatter_add_(1, inputs, self.repeat[distance].to(scores.dtype).expand(inputs.shape))
        scores[:, 0] = float("-inf")
        return scores

    def score_items(self, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """`score_last` of the given item rows only: [batch, seq], [batch, k] -> [batch, k].

        Explanations rescore a few items under many edited histories, where a product with the whole
        item table would cost as much as scoring the catalogue each time.
        """
        hidden = self.encode(inputs, last_only=True)[:, -1]  # [batch, hidden]
        scores = (self.item_emb(items) * hidden.unsqueeze(1)).sum(-1)  # [batch, k]
        if self.repeat is not None:
            distance = torch.arange(inputs.shape[1] - 1, -1, -1, device=inputs.device)
            seen = inputs.unsqueeze(1) == items.unsqueeze(2)  # [batch, k, seq]
            scores = scores + (seen * self.repeat[distance].to(scores.dtype)).sum(-1)
        return scores

    def _seen(self, inputs: torch.Tensor, scored: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(scored-position row, item row, repeat bias) for every item at or before each scored position.

        Rows number the scored positions in the order of `inputs[scored]`; an item seen twice appears twice
        (its biases add up).
        """
        assert self.repeat is not None
        length = inputs.shape[1]
        row_of = torch.full(inputs.shape, -1, dtype=torch.long, device=inputs.device)
        row_of[scored] = torch.arange(int(scored.sum()), device=inputs.device)
        at, before = torch.tril_indices(length, length, device=inputs.device)  # pairs with before <= at
        rows = row_of[:, at]  # [batch, pairs]
        items = inputs[:, before]  # [batch, pairs]
        keep = (rows >= 0) & (items > 0)
        return rows[keep], items[keep], self.repeat[(at - before).expand_as(rows)[keep]]


def attention_mask(inputs: torch.Tensor) -> torch.Tensor:
    """[batch, 1, seq, seq] boolean: a position sees itself and earlier non-padded positions, never later ones.

    Each position may always see itself, so padded rows are never fully masked (that would be NaN).
    """
    length = inputs.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
    keys = (inputs > 0).unsqueeze(1)  # [batch, 1, seq] (broadcast over queries)
    eye = torch.eye(length, dtype=torch.bool, device=inputs.device)
    return (causal & (keys | eye)).unsqueeze(1)


def grow_items(state: dict[str, torch.Tensor], n_items: int, seed: int) -> dict[str, torch.Tensor]:
    """A champion's weights with fresh embedding rows for items appended to its mapping (warm start)."""
    old = state["item_emb.weight"]
    extra = n_items + 1 - old.shape[0]
    if extra < 0:
        raise ValueError(f"the mapping shrank from {old.shape[0] - 1} to {n_items} items; it may only grow")
    generator = torch.Generator().manual_seed(seed)
    fresh = torch.randn(extra, old.shape[1], generator=generator) * 0.02
    return {**state, "item_emb.weight": torch.cat([old, fresh.to(old.dtype)])}

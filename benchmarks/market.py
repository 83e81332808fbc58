"""A simulated market for the delivery and off-policy benchmarks: users in segments, creatives, true rates.

Segments are the world's personas (the taste groups the profile model recovers), every creative is
eligible in every segment, and `true_ctr[s, c]` is the mean true click probability at position 1 of
segment s's users for creative c: the ground truth that regret and the estimators are scored against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pipelines.sources import TINY_STORE
from pipelines.sources.fashion import CATEGORIES
from pipelines.sources.response import ResponseConfig, ResponseModel
from pipelines.sources.world import N_CATEGORIES, build_world


@dataclass(frozen=True)
class Market:
    model: ResponseModel
    user_ids: np.ndarray  # [users] 1-based
    segment: np.ndarray  # [users] segment id 0..segments-1
    creative_ids: tuple[str, ...]
    category: np.ndarray  # [creatives] category index
    quality: np.ndarray  # [creatives] hidden log-odds
    true_ctr: np.ndarray  # [segments, creatives]

    @property
    def segments(self) -> int:
        return self.true_ctr.shape[0]

    @property
    def creatives(self) -> int:
        return self.true_ctr.shape[1]

    def segment_weights(self) -> np.ndarray:
        """Share of users in each segment."""
        return np.bincount(self.segment, minlength=self.segments) / len(self.segment)


def build_market(users: int, segments: int, creatives: int, seed: int) -> Market:
    """A world of `users` users in `segments` personas and `creatives` creatives spread over the categories."""
    config = dataclasses.replace(TINY_STORE, users=users, items=2_000, personas=segments, seed=seed)
    world = build_world(config)
    model = ResponseModel(world, ResponseConfig(seed=seed))
    category = np.arange(creatives) % N_CATEGORIES
    ids = tuple(f"c1-{CATEGORIES[c]}-r{i // N_CATEGORIES}" for i, c in enumerate(category))
    quality = model.creative_quality(ids)
    user_ids = np.arange(1, users + 1)
    segment = world.user_persona.astype(np.int64)
    sizes = np.bincount(segment, minlength=segments)
    true_ctr = np.empty((segments, creatives))
    for c in range(creatives):
        p = model.click_probability(user_ids, np.full(users, category[c]), np.full(users, quality[c]))
        true_ctr[:, c] = np.bincount(segment, weights=p, minlength=segments) / sizes
    return Market(model, user_ids, segment, ids, category, quality, true_ctr)

"""The simulated store's ground truth for delivered creatives and served recommendations.

A user clicks a creative of category c with hidden quality q shown at position k with probability

    P(click) = examine(k) * sigmoid(logit(base_ctr) + taste_weight * log(CATEGORIES * affinity[u, c]) + q)

(the position-based click model of Craswell et al., WSDM 2008: examination depends on the position only,
attraction on user and content only; examine(k) = k^-position_decay). `affinity` is the `World`'s true
category taste of the user, so a segment's best creative is the one of its members' favourite category
with a good hidden quality. A click converts with sigmoid(logit(base_cvr) + cvr_taste_weight * log(...)),
and a conversion buys an item of the category picked by the world's popularity, at its list price.

Hidden quality is a fixed function of the creative id (or item id) and the seed, so the same creative
keeps its truth from day to day. Only the simulator and the benchmarks build a `ResponseModel`: policies
and estimators see clicks, never these probabilities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit, ndtri

from pipelines.delivery.arms import unit_hash
from pipelines.errors import ConfigError, DataError
from pipelines.sources.world import N_CATEGORIES, World, pick_items


@dataclass(frozen=True)
class ResponseConfig:
    """How users respond to what they are shown."""

    seed: int = 23
    base_ctr: float = 0.02  # attraction of an average creative to a user of average taste for its category
    taste_weight: float = 1.0  # log-odds per unit of log relative category affinity
    quality_sd: float = 0.35  # spread (log-odds) of hidden creative and item quality
    position_decay: float = 0.7  # examination probability at position k is k^-position_decay
    base_cvr: float = 0.06  # conversion probability of a click at average taste
    cvr_taste_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("base_ctr", "base_cvr"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"ResponseConfig.{name} must be in (0, 1), got {getattr(self, name)}")
        for name in ("taste_weight", "quality_sd", "position_decay", "cvr_taste_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ResponseConfig.{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class Responses:
    """What the shown impressions did: [impressions] each."""

    clicked: np.ndarray  # bool
    converted: np.ndarray  # bool, only where clicked
    revenue: np.ndarray  # float64 EUR, 0 where not converted


class ResponseModel:
    """True click, conversion and revenue of (user, shown content, position), from a `World`."""

    def __init__(self, world: World, config: ResponseConfig | None = None) -> None:
        self.world = world
        self.config = config or ResponseConfig()
        cdf = world.user_affinity_cdf
        # Relative taste: 1 = the user likes the category as much as an even spread would.
        affinity = np.diff(cdf, axis=1, prepend=np.zeros((len(cdf), 1), dtype=cdf.dtype))
        self.log_taste = np.log(np.maximum(affinity, 1e-6) * N_CATEGORIES).astype(np.float32)  # [users, categories]

    def creative_quality(self, creative_ids: Sequence[str]) -> np.ndarray:
        """Hidden quality (log-odds) of each creative id: normal(0, quality_sd), fixed by id and seed."""
        keys = np.array(
            [int.from_bytes(hashlib.blake2b(str(c).encode(), digest_size=8).digest()[:7], "big") for c in creative_ids],
            dtype=np.int64,
        )
        return self._normal(keys, "creative")

    def item_quality(self, item_ids: np.ndarray) -> np.ndarray:
        """Hidden quality (log-odds) of each item id (1-based), fixed by id and seed."""
        return self._normal(np.asarray(item_ids, dtype=np.int64), "item")

    def _normal(self, keys: np.ndarray, kind: str) -> np.ndarray:
        u = unit_hash(keys, f"response-{kind}-{self.config.seed}")
        return self.config.quality_sd * ndtri(np.clip(u, 1e-12, 1 - 1e-12))

    def _taste(self, user_ids: np.ndarray, categories: np.ndarray) -> np.ndarray:
        users = np.asarray(user_ids, dtype=np.int64) - 1
        categories = np.asarray(categories, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= len(self.log_taste)):
            raise DataError(f"user ids must be in 1..{len(self.log_taste)} of the simulated world")
        if len(categories) and (categories.min() < 0 or categories.max() >= N_CATEGORIES):
            raise DataError(f"categories must be indices 0..{N_CATEGORIES - 1}")
        return self.log_taste[users, categories].astype(np.float64)

    def examination(self, positions: np.ndarray) -> np.ndarray:
        """Probability that a slot at each (1-based) position is looked at."""
        positions = np.asarray(positions, dtype=np.float64)
        if (positions < 1).any():
            raise DataError("positions are 1-based")
        return positions**-self.config.position_decay

    def click_probability(
        self, user_ids: np.ndarray, categories: np.ndarray, quality: np.ndarray, positions: np.ndarray | int = 1
    ) -> np.ndarray:
        """True click probability of each impression: [impressions] float64."""
        c = self.config
        attraction = expit(logit(c.base_ctr) + c.taste_weight * self._taste(user_ids, categories) + quality)
        return self.examination(np.broadcast_to(positions, np.shape(attraction))) * attraction

    def item_click_probability(
        self, user_ids: np.ndarray, item_ids: np.ndarray, positions: np.ndarray | int = 1
    ) -> np.ndarray:
        """True click probability of recommended items (1-based ids) in a served list."""
        items = np.asarray(item_ids, dtype=np.int64)
        category = self.world.item_category[items - 1]
        return self.click_probability(user_ids, category, self.item_quality(items), positions)

    def conversion_probability(self, user_ids: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """True probability that a click on content of `categories` converts."""
        c = self.config
        return expit(logit(c.base_cvr) + c.cvr_taste_weight * self._taste(user_ids, categories))

    def expected_order_value(self) -> np.ndarray:
        """Mean EUR value of a conversion per category (popularity-weighted list price): [categories]."""
        w = self.world
        return np.array(
            [
                np.diff(w.category_cdf[c], prepend=0.0) @ (w.item_price_cents[w.category_items[c]] / 100)
                for c in range(N_CATEGORIES)
            ]
        )

    def respond(
        self,
        user_ids: np.ndarray,
        categories: np.ndarray,
        quality: np.ndarray,
        positions: np.ndarray | int,
        rng: np.random.Generator,
    ) -> Responses:
        """Draw clicks, conversions and revenue for shown impressions."""
        clicked = rng.random(len(user_ids)) < self.click_probability(user_ids, categories, quality, positions)
        converted = clicked & (rng.random(len(user_ids)) < self.conversion_probability(user_ids, categories))
        revenue = np.zeros(len(user_ids))
        where = np.flatnonzero(converted)
        if len(where):
            bought = pick_items(rng, np.asarray(categories)[where], self.world)
            revenue[where] = self.world.item_price_cents[bought] / 100
        return Responses(clicked, converted, revenue)

"""The synthetic store's hidden world: who the users are, what the items are, which campaigns run.

Everything the event generator needs per user or item lives here as flat NumPy arrays (about 60 bytes
a user), so 1,000,000 users cost tens of megabytes. Ids are 1-based (`user_id = index + 1`).

Planted structure, for later model tests:
- personas: each user belongs to one of `personas` taste groups; a user's category affinities are
  drawn around the persona's (so user profiles cluster);
- power-law popularity: within a category, item of popularity rank r is picked with weight r^-exponent;
- "next item": every item has one designated successor (same category, or its `COMPLEMENTS` category);
  the generator follows it with probability `next_item_prob`, so sequences are partly predictable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.compute import derive_seed
from pipelines.sources import fashion
from pipelines.sources.config import StoreConfig

N_CATEGORIES = len(fashion.CATEGORIES)
SIGNUP_HISTORY_DAYS = 730  # established users signed up within two years before the window


@dataclass(frozen=True)
class Campaign:
    campaign_id: int
    name: str
    start_date: dt.date
    end_date: dt.date
    categories: tuple[int, ...]  # category indices
    target_segments: tuple[int, ...]  # persona ids; empty = everyone
    headline_template: str
    discount_pct: int

    def live_on(self, day: dt.date) -> bool:
        return self.start_date <= day <= self.end_date


@dataclass(frozen=True)
class World:
    """Latent arrays of users and items, and the campaigns."""

    config: StoreConfig
    user_persona: np.ndarray  # [users] int16
    user_affinity_cdf: np.ndarray  # [users, categories] float32, cumulative category affinities
    user_activity: np.ndarray  # [users] float32, sessions a day on an average weekday
    user_signup_day: np.ndarray  # [users] int32, day index relative to the window start (may be negative)
    user_age_group: np.ndarray  # [users] int8 index into AGE_GROUPS
    user_region: np.ndarray  # [users] int8 index into REGIONS
    item_category: np.ndarray  # [items] int8
    item_price_cents: np.ndarray  # [items] int64 list price
    item_next: np.ndarray  # [items] int32 planted successor (item index)
    category_items: tuple[np.ndarray, ...]  # per category: item indices in popularity order
    category_cdf: tuple[np.ndarray, ...]  # per category: cumulative popularity (float64, ends at 1)
    item_titles: tuple[str, ...]
    campaigns: tuple[Campaign, ...]


def _rng(config: StoreConfig, part: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed("store", config.seed, part))


def build_world(config: StoreConfig) -> World:
    """Draw the users, the items and the campaigns of `config` (deterministic by `config.seed`)."""
    persona, affinity_cdf, activity, signup, age, region = _users(config)
    category, price, titles = _items(config)
    category_items, category_cdf = _popularity(config, category)
    return World(
        config=config,
        user_persona=persona,
        user_affinity_cdf=affinity_cdf,
        user_activity=activity,
        user_signup_day=signup,
        user_age_group=age,
        user_region=region,
        item_category=category,
        item_price_cents=price,
        item_next=_successors(config, category, category_items, category_cdf),
        category_items=category_items,
        category_cdf=category_cdf,
        item_titles=titles,
        campaigns=_campaigns(config),
    )


def _users(config: StoreConfig) -> tuple[np.ndarray, ...]:
    rng = _rng(config, "users")
    n = config.users
    persona_taste = rng.dirichlet(np.full(N_CATEGORIES, 0.4), size=config.personas)  # [personas, categories]
    persona = rng.integers(0, config.personas, size=n).astype(np.int16)
    alpha = config.affinity_concentration * N_CATEGORIES * persona_taste[persona] + 0.05  # [users, categories]
    # Dirichlet draws via normalised gammas, in float32 to keep 1M users small.
    gammas = rng.standard_gamma(alpha).astype(np.float32)
    affinity_cdf = np.cumsum(gammas / gammas.sum(axis=1, keepdims=True), axis=1)
    affinity_cdf[:, -1] = 1.0
    # Heavy-tailed activity with mean 1: a few users shop a lot, most now and then.
    activity = (config.sessions_per_user_day * rng.lognormal(-0.32, 0.8, size=n)).astype(np.float32)
    new = rng.random(n) < config.new_user_share
    signup = np.where(
        new, rng.integers(0, config.days, size=n), -rng.integers(1, SIGNUP_HISTORY_DAYS + 1, size=n)
    ).astype(np.int32)
    age = rng.choice(len(fashion.AGE_GROUPS), size=n, p=fashion.AGE_GROUP_SHARES).astype(np.int8)
    region = rng.choice(len(fashion.REGIONS), size=n, p=fashion.REGION_SHARES).astype(np.int8)
    return persona, affinity_cdf, activity, signup, age, region


def _items(config: StoreConfig) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    rng = _rng(config, "items")
    n = config.items
    category = np.concatenate(
        [np.arange(N_CATEGORIES), rng.choice(N_CATEGORIES, size=n - N_CATEGORIES, p=fashion.CATEGORY_SHARES)]
    ).astype(np.int8)
    bounds = np.array([fashion.LIST_PRICE_RANGES[c] for c in fashion.CATEGORIES])  # [categories, 2]
    low, high = np.log(bounds[category, 0]), np.log(bounds[category, 1])
    # Log-scale position in the range, skewed towards the cheaper end; prices end in .99 like a shop's.
    euros = np.floor(np.exp(low + (high - low) * rng.beta(2.0, 3.0, size=n))) + 0.99
    price_cents = np.clip(
        np.round(euros * 100), np.round(bounds[category, 0] * 100), np.round(bounds[category, 1] * 100)
    )
    titles = []
    for c in category:
        name = fashion.CATEGORIES[c]
        colour = fashion.COLOURS[rng.integers(len(fashion.COLOURS))]
        style = fashion.STYLES[name][rng.integers(len(fashion.STYLES[name]))]
        material = fashion.MATERIALS[name][rng.integers(len(fashion.MATERIALS[name]))]
        titles.append(f"{colour} {style} {material} {fashion.NOUNS[name]}")
    return category, price_cents.astype(np.int64), tuple(titles)


def _popularity(config: StoreConfig, category: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    rng = _rng(config, "popularity")
    items, cdfs = [], []
    for c in range(N_CATEGORIES):
        members = rng.permutation(np.flatnonzero(category == c))  # popularity rank order
        weights = np.arange(1, len(members) + 1, dtype=np.float64) ** -config.popularity_exponent
        cdf = np.cumsum(weights / weights.sum())
        cdf[-1] = 1.0
        items.append(members.astype(np.int32))
        cdfs.append(cdf)
    return tuple(items), tuple(cdfs)


def pick_items(rng: np.random.Generator, categories: np.ndarray, world: World) -> np.ndarray:
    """One item per entry of `categories`, by power-law popularity within the category."""
    out = np.empty(len(categories), dtype=np.int32)
    uniform = rng.random(len(categories))
    for c in range(N_CATEGORIES):
        where = np.flatnonzero(categories == c)
        if len(where):
            ranks = np.searchsorted(world.category_cdf[c], uniform[where], side="right")
            out[where] = world.category_items[c][np.minimum(ranks, len(world.category_items[c]) - 1)]
    return out


def _successors(
    config: StoreConfig,
    category: np.ndarray,
    category_items: tuple[np.ndarray, ...],
    category_cdf: tuple[np.ndarray, ...],
) -> np.ndarray:
    rng = _rng(config, "successors")
    complement = np.array([fashion.CATEGORIES.index(fashion.COMPLEMENTS[c]) for c in fashion.CATEGORIES])
    target = np.where(rng.random(config.items) < 0.6, category, complement[category])
    successor = np.empty(config.items, dtype=np.int32)
    uniform = rng.random(config.items)
    for c in range(N_CATEGORIES):
        where = np.flatnonzero(target == c)
        ranks = np.minimum(np.searchsorted(category_cdf[c], uniform[where], side="right"), len(category_items[c]) - 1)
        successor[where] = category_items[c][ranks]
    # An item is never its own successor: fall back to the next item in popularity order.
    for i in np.flatnonzero(successor == np.arange(config.items)):
        members = category_items[category[i]]
        successor[i] = members[(np.flatnonzero(members == i)[0] + 1) % len(members)]
    return successor


def _campaigns(config: StoreConfig) -> tuple[Campaign, ...]:
    """`campaigns` non-overlapping windows spread over the store's days; the last one is live on end_date."""
    rng = _rng(config, "campaigns")
    if config.campaigns == 0:
        return ()
    spacing = max(config.days // config.campaigns, 1)
    out = []
    for j in range(config.campaigns):
        end = config.end_date - dt.timedelta(days=(config.campaigns - 1 - j) * spacing)
        length = int(min(rng.integers(3, 8), max(spacing - 2, 1)))
        start = max(end - dt.timedelta(days=length - 1), config.start_date)
        categories = tuple(
            sorted(int(c) for c in rng.choice(N_CATEGORIES, size=int(rng.integers(1, 3)), replace=False))
        )
        if j == 0:
            targets: tuple[int, ...] = ()  # the first campaign speaks to everyone
        else:
            size = int(min(rng.integers(1, 3), config.personas))
            targets = tuple(sorted(int(s) for s in rng.choice(config.personas, size=size, replace=False)))
        theme = fashion.CAMPAIGN_THEMES[rng.integers(len(fashion.CAMPAIGN_THEMES))]
        out.append(
            Campaign(
                campaign_id=j + 1,
                name=f"{theme}: {' & '.join(fashion.CATEGORIES[c] for c in categories)}",
                start_date=start,
                end_date=end,
                categories=categories,
                target_segments=targets,
                headline_template=fashion.HEADLINE_TEMPLATES[rng.integers(len(fashion.HEADLINE_TEMPLATES))],
                discount_pct=int(fashion.DISCOUNTS_PCT[rng.integers(len(fashion.DISCOUNTS_PCT))]),
            )
        )
    return tuple(out)


def users_frame(world: World) -> pd.DataFrame:
    config = world.config
    signup = np.datetime64(config.start_date, "D") + world.user_signup_day.astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "user_id": np.arange(1, config.users + 1, dtype=np.int64),
            "signup_date": np.datetime_as_string(signup),
            "age_group": np.asarray(fashion.AGE_GROUPS, dtype=object)[world.user_age_group],
            "region": np.asarray(fashion.REGIONS, dtype=object)[world.user_region],
        }
    )


def items_frame(world: World) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": np.arange(1, world.config.items + 1, dtype=np.int64),
            "category": np.asarray(fashion.CATEGORIES, dtype=object)[world.item_category],
            "price": world.item_price_cents / 100,
            "title": list(world.item_titles),
        }
    )


def campaigns_frame(world: World) -> pd.DataFrame:
    rows = [
        {
            "campaign_id": c.campaign_id,
            "name": c.name,
            "start_date": c.start_date.isoformat(),
            "end_date": c.end_date.isoformat(),
            "categories": [fashion.CATEGORIES[i] for i in c.categories],
            "target_segments": list(c.target_segments),
            "headline_template": c.headline_template,
            "discount_pct": c.discount_pct,
        }
        for c in world.campaigns
    ]
    columns = ["campaign_id", "name", "start_date", "end_date", "categories", "target_segments"]
    return pd.DataFrame(rows, columns=[*columns, "headline_template", "discount_pct"])

"""Events of the synthetic store, one (day, block of users) at a time, in frames of bounded size.

A day of a block: each active user (signed up by that day) starts Poisson(activity x weekday factor x
campaign lift) sessions. A session is 1 + geometric views; each view adds to cart with `cart_rate`
(a few seconds later) and a carted item is bought with `purchase_rate` after the last view of the
session, so every session reads view -> cart -> purchase in time order and all of it stays inside the
day (events.batch_date is the UTC date of event_ts). A view follows the previous item's planted
successor with `next_item_prob` (the session's first view follows the user's last item of earlier
days), else a fresh item: a category from the user's affinities (tilted to a live campaign's categories
for targeted users), then an item by power-law popularity. Prices are list prices, less the campaign's
discount for targeted users while it runs.

Randomness is seeded per (seed, day, block), and event ids count up in generation order, so the same
config gives the same rows however the frames are consumed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.compute import derive_seed
from pipelines.sources import fashion
from pipelines.sources.world import N_CATEGORIES, World, pick_items

EVENT_TYPES = np.array(["view", "cart", "purchase"], dtype=object)
VIEW, CART, PURCHASE = 0, 1, 2
SECONDS_PER_DAY = 86_400
HOUR_CDF = np.cumsum(fashion.HOUR_WEIGHTS) / sum(fashion.HOUR_WEIGHTS)


@dataclass(frozen=True)
class Sessions:
    """The views of one (day, block): flat arrays, one entry per view, grouped by session."""

    user: np.ndarray  # [views] user index
    item: np.ndarray  # [views] item index
    ts: np.ndarray  # [views] seconds since the day's midnight
    position: np.ndarray  # [views] 0-based position of the view in its session
    last_ts: np.ndarray  # [views] the session's last view time


def generate_events(world: World) -> Iterator[pd.DataFrame]:
    """All events of the store, day by day, as frames of at most `config.chunk_rows` rows.

    Columns: batch_date (date), event_id, user_id, item_id (int64), event_type (str),
    event_ts (datetime64[us, UTC]), price (float, 2 decimals), quantity (int32).
    """
    config = world.config
    last_item = np.full(config.users, -1, dtype=np.int32)  # the user's last viewed item so far
    next_id = 1
    for day_index in range(config.days):
        day = config.start_date + dt.timedelta(days=day_index)
        for lo in range(0, config.users, config.block_users):
            hi = min(lo + config.block_users, config.users)
            rng = np.random.default_rng(derive_seed("store-events", config.seed, day.isoformat(), lo))
            frame = _block_day(world, rng, day, day_index, lo, hi, last_item)
            frame.insert(1, "event_id", np.arange(next_id, next_id + len(frame), dtype=np.int64))
            next_id += len(frame)
            for start in range(0, len(frame), config.chunk_rows):
                yield frame.iloc[start : start + config.chunk_rows].reset_index(drop=True)


def _block_day(
    world: World, rng: np.random.Generator, day: dt.date, day_index: int, lo: int, hi: int, last_item: np.ndarray
) -> pd.DataFrame:
    config = world.config
    live = [c for c in world.campaigns if c.live_on(day)]
    users = np.arange(lo, hi)
    targeted = _targeted(world, live, users)  # [users in block, live campaigns] bool
    rate = world.user_activity[lo:hi] * fashion.WEEKDAY_FACTORS[day.weekday()]
    rate = rate * (1 + config.campaign_lift * targeted.any(axis=1))
    rate = np.where(world.user_signup_day[lo:hi] <= day_index, rate, 0.0)
    sessions = _sessions(world, rng, users, rng.poisson(rate), targeted, live, last_item)
    return _funnel(world, rng, day, sessions, live, targeted[sessions.user - lo] if live else None)


def _targeted(world: World, live: list, users: np.ndarray) -> np.ndarray:
    out = np.zeros((len(users), len(live)), dtype=bool)
    for j, campaign in enumerate(live):
        out[:, j] = (
            True if not campaign.target_segments else np.isin(world.user_persona[users], campaign.target_segments)
        )
    return out


def _sessions(
    world: World,
    rng: np.random.Generator,
    users: np.ndarray,
    counts: np.ndarray,
    targeted: np.ndarray,
    live: list,
    last_item: np.ndarray,
) -> Sessions:
    config = world.config
    session_user = np.repeat(users, counts)  # [sessions]
    n_sessions = len(session_user)
    length = np.minimum(rng.geometric(1 / config.views_per_session, size=n_sessions), config.max_views_per_session)
    # Gaps between views: 40 s to 10 min; the session's start is drawn by hour, then moved earlier if
    # the session would run past midnight (purchases come up to ~2 min after the last view).
    gaps = np.minimum(40 + rng.exponential(80, size=int(length.sum())), 600).astype(np.int64)
    session = np.repeat(np.arange(n_sessions), length)  # [views]
    first = np.cumsum(length) - length  # [sessions] index of the session's first view
    position = np.arange(len(session)) - first[session]  # [views] 0-based position in the session
    offset = np.cumsum(gaps) - np.cumsum(gaps)[first][session]  # [views] seconds since the session's first view
    duration = offset[first + length - 1]  # [sessions]
    hour = np.searchsorted(HOUR_CDF, rng.random(n_sessions), side="right")
    start = hour * 3600 + rng.integers(0, 3600, size=n_sessions)
    start = np.minimum(start, SECONDS_PER_DAY - 1 - 200 - duration)
    ts = start[session] + offset
    item = _walk(world, rng, session_user, session, position, length, targeted, live, users[0], last_item)
    # The user's last item for tomorrow: the user's latest view today.
    order = np.argsort(ts, kind="stable")[::-1]  # latest first
    _, latest = np.unique(session_user[session][order], return_index=True)
    last_item[session_user[session][order[latest]]] = item[order[latest]]
    return Sessions(
        user=session_user[session], item=item, ts=ts, position=position, last_ts=(start + duration)[session]
    )


def _walk(
    world: World,
    rng: np.random.Generator,
    session_user: np.ndarray,
    session: np.ndarray,
    position: np.ndarray,
    length: np.ndarray,
    targeted: np.ndarray,
    live: list,
    lo: int,
    last_item: np.ndarray,
) -> np.ndarray:
    """Items of every view: position by position, so each view can follow the one before it."""
    config = world.config
    view_user = session_user[session]
    fresh = _fresh_categories(world, rng, view_user, targeted[view_user - lo] if live else None, live)
    fresh_item = pick_items(rng, fresh, world)
    follow = rng.random(len(session)) < config.next_item_prob
    item = np.empty(len(session), dtype=np.int32)
    first = position == 0
    previous = last_item[view_user[first]]
    item[first] = np.where(follow[first] & (previous >= 0), world.item_next[np.maximum(previous, 0)], fresh_item[first])
    for k in range(1, int(length.max(initial=0))):
        at = np.flatnonzero(position == k)
        item[at] = np.where(follow[at], world.item_next[item[at - 1]], fresh_item[at])
    return item


def _fresh_categories(
    world: World, rng: np.random.Generator, view_user: np.ndarray, targeted: np.ndarray | None, live: list
) -> np.ndarray:
    """A category per view from the user's affinities; targeted users lean to a live campaign's categories."""
    u = rng.random(len(view_user), dtype=np.float32)
    category = (world.user_affinity_cdf[view_user] < u[:, None]).sum(axis=1)  # [views]
    category = np.minimum(category, N_CATEGORIES - 1)
    if targeted is not None:
        focus = rng.random(len(view_user)) < world.config.campaign_focus
        for j, campaign in enumerate(live):
            pick = focus & targeted[:, j]
            choices = np.asarray(campaign.categories)
            category[pick] = choices[rng.integers(0, len(choices), size=int(pick.sum()))]
            focus &= ~pick  # one campaign per view
    return category


def _funnel(
    world: World, rng: np.random.Generator, day: dt.date, s: Sessions, live: list, targeted: np.ndarray | None
) -> pd.DataFrame:
    """Views, carts a few seconds after their view, purchases after the session's last view."""
    config = world.config
    n = len(s.item)
    cart = rng.random(n) < config.cart_rate
    price = world.item_price_cents[s.item].astype(np.float64)
    if targeted is not None:
        category = world.item_category[s.item]
        for j, campaign in enumerate(live):
            on_sale = targeted[:, j] & np.isin(category, campaign.categories)
            price = np.where(on_sale, np.round(price * (1 - campaign.discount_pct / 100)), price)
    purchase = cart & (rng.random(n) < config.purchase_rate)
    cart_ts = s.ts + rng.integers(5, 30, size=n)
    # Carts come before the next view (gaps >= 40 s); purchases after the last cart, in view order.
    purchase_ts = s.last_ts + 60 + 3 * s.position
    kind = np.concatenate([np.full(n, VIEW), np.full(int(cart.sum()), CART), np.full(int(purchase.sum()), PURCHASE)])
    quantity = np.ones(len(kind), dtype=np.int32)
    quantity[len(kind) - int(purchase.sum()) :] += rng.random(int(purchase.sum())) < 0.1
    ts = np.concatenate([s.ts, cart_ts[cart], purchase_ts[purchase]])
    order = np.argsort(ts, kind="stable")  # time order; within a session no two events share a second
    midnight = np.datetime64(day, "s")
    return pd.DataFrame(
        {
            "batch_date": np.full(len(kind), day),
            "user_id": (np.concatenate([s.user, s.user[cart], s.user[purchase]]) + 1).astype(np.int64)[order],
            "item_id": (np.concatenate([s.item, s.item[cart], s.item[purchase]]) + 1).astype(np.int64)[order],
            "event_type": EVENT_TYPES[kind[order]],
            "event_ts": pd.DatetimeIndex(midnight + ts[order].astype("timedelta64[s]"))
            .tz_localize("UTC")
            .as_unit("us"),
            "price": np.concatenate([price, price[cart], price[purchase]])[order] / 100,
            "quantity": quantity[order],
        }
    )

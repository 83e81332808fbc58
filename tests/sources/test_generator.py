"""The synthetic store's events: deterministic, bounded chunks, and the planted behaviour later models rely on."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import ConfigError
from pipelines.sources import fashion
from pipelines.sources.config import TINY_STORE, StoreConfig
from pipelines.sources.generator import generate_events
from pipelines.sources.world import build_world, campaigns_frame, items_frame, users_frame

# Eight weeks without campaigns: weekly pattern, popularity and sequences without spikes in the way.
CALM = StoreConfig(users=3_000, items=400, days=56, end_date=dt.date(2026, 6, 28), seed=11, campaigns=0)


def _events(config: StoreConfig) -> pd.DataFrame:
    return pd.concat(list(generate_events(build_world(config))), ignore_index=True)


@pytest.fixture(scope="module")
def calm() -> pd.DataFrame:
    return _events(CALM)


def test_same_seed_gives_identical_rows_and_another_seed_different_rows() -> None:
    first, again = _events(TINY_STORE), _events(TINY_STORE)
    pd.testing.assert_frame_equal(first, again)
    other = _events(dataclasses.replace(TINY_STORE, seed=TINY_STORE.seed + 1))
    assert len(other) != len(first) or not other["item_id"].equals(first["item_id"])
    world, other_world = build_world(TINY_STORE), build_world(dataclasses.replace(TINY_STORE, seed=99))
    pd.testing.assert_frame_equal(users_frame(world), users_frame(build_world(TINY_STORE)))
    assert not items_frame(world)["title"].equals(items_frame(other_world)["title"])


def test_chunks_never_exceed_the_bound_and_do_not_change_the_rows() -> None:
    small = dataclasses.replace(TINY_STORE, chunk_rows=97, block_users=70)
    frames = list(generate_events(build_world(small)))
    assert max(len(f) for f in frames) <= 97
    assert sum(len(f) == 97 for f in frames) > 10  # the bound is reached, not just respected
    pd.testing.assert_frame_equal(
        pd.concat(frames, ignore_index=True), _events(dataclasses.replace(small, chunk_rows=1_000_000))
    )


def test_event_ids_are_unique_and_rows_are_clean(calm: pd.DataFrame) -> None:
    assert calm["event_id"].is_unique and calm["event_id"].min() == 1 and calm["event_id"].max() == len(calm)
    assert not calm.isna().any().any()
    assert set(calm["event_type"]) == {"view", "cart", "purchase"}
    assert (calm["event_ts"].dt.date == calm["batch_date"]).all()  # every event inside its batch date
    assert calm["batch_date"].min() == CALM.start_date and calm["batch_date"].max() == CALM.end_date
    assert calm["user_id"].between(1, CALM.users).all() and calm["item_id"].between(1, CALM.items).all()
    assert (calm["quantity"] >= 1).all()


def test_no_user_acts_before_signing_up(calm: pd.DataFrame) -> None:
    users = users_frame(build_world(CALM))
    signup = pd.to_datetime(users.set_index("user_id")["signup_date"]).dt.date
    assert (calm["batch_date"] >= calm["user_id"].map(signup)).all()
    assert (signup >= CALM.start_date).mean() == pytest.approx(CALM.new_user_share, abs=0.03)


def test_every_session_runs_view_then_cart_then_purchase(calm: pd.DataFrame) -> None:
    ordered = calm.sort_values(["user_id", "item_id", "event_ts", "event_id"])
    key = [ordered["user_id"], ordered["item_id"], ordered["batch_date"]]
    seen = {kind: (ordered["event_type"] == kind).groupby(key).cumsum() for kind in ("view", "cart", "purchase")}
    assert (seen["view"] >= seen["cart"]).all()  # no cart without an earlier view of the item that day
    assert (seen["cart"] >= seen["purchase"]).all()  # no purchase without an earlier cart
    counts = calm["event_type"].value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > 0
    assert counts["cart"] / counts["view"] == pytest.approx(CALM.cart_rate, rel=0.1)


def test_item_popularity_follows_a_power_law(calm: pd.DataFrame) -> None:
    views = calm.loc[calm["event_type"] == "view", "item_id"].value_counts().to_numpy()  # descending
    top_share = views[: len(views) // 10].sum() / views.sum()
    assert top_share > 0.35  # the top 10% of items draw over a third of the views (uniform: 10%)
    ranks = np.arange(1, len(views) + 1)
    head = slice(0, len(views) // 2)
    slope = np.polyfit(np.log(ranks[head]), np.log(views[head]), 1)[0]
    assert -2.0 < slope < -0.6


def test_weekends_are_busier_than_midweek_and_days_stay_near_their_trailing_mean(calm: pd.DataFrame) -> None:
    daily = calm.groupby("batch_date").size()
    weekday = pd.Series([d.weekday() for d in daily.index], index=daily.index)
    saturday, tuesday = daily[weekday == 5].mean(), daily[weekday == 1].mean()
    assert saturday / tuesday > 1.12  # planted ratio 1.13 / 0.90
    trailing = daily.rolling(7).mean().shift(1).dropna()
    assert ((daily[trailing.index] / trailing - 1).abs() < 0.3).all()


def test_campaign_days_spike_for_the_targeted_audience() -> None:
    config = dataclasses.replace(CALM, campaigns=3, campaign_lift=0.6)
    world = build_world(config)
    events = _events(config)
    daily = events.groupby("batch_date").size()
    everyone = next(c for c in world.campaigns if not c.target_segments)
    window = daily[(daily.index >= everyone.start_date) & (daily.index <= everyone.end_date)]
    before = daily[(daily.index < everyone.start_date) & (daily.index >= everyone.start_date - dt.timedelta(days=7))]
    assert window.mean() / before.mean() > 1.3
    # During a campaign, its categories take a larger share of views than outside it.
    category = pd.Series(world.item_category[events["item_id"].to_numpy() - 1], index=events.index)
    live = (events["batch_date"] >= everyone.start_date) & (events["batch_date"] <= everyone.end_date)
    in_campaign = category.isin(everyone.categories)
    assert in_campaign[live].mean() > in_campaign[~live].mean() + 0.1


def test_campaigns_are_well_formed_and_one_is_live_on_the_end_date() -> None:
    world = build_world(StoreConfig(campaigns=4, days=40, personas=5))
    frame = campaigns_frame(world)
    assert len(frame) == 4 and frame["campaign_id"].is_unique
    assert any(c.live_on(world.config.end_date) for c in world.campaigns)
    for c in world.campaigns:
        assert world.config.start_date <= c.start_date <= c.end_date <= world.config.end_date
        assert all(0 <= s < 5 for s in c.target_segments) and 0 < c.discount_pct <= fashion.MAX_DISCOUNT_PCT
        assert c.headline_template.format(segment="S", discount=c.discount_pct, category="Bag")
    windows = sorted((c.start_date, c.end_date) for c in world.campaigns)
    assert all(a[1] < b[0] for a, b in zip(windows, windows[1:], strict=False))  # no overlaps


def test_prices_stay_in_their_category_range() -> None:
    config = dataclasses.replace(CALM, days=21, campaigns=3)
    world = build_world(config)
    items = items_frame(world)
    low = items["category"].map(lambda c: fashion.LIST_PRICE_RANGES[c][0])
    high = items["category"].map(lambda c: fashion.LIST_PRICE_RANGES[c][1])
    assert items["price"].between(low, high).all()
    events = _events(config)
    category = events["item_id"].map(items.set_index("item_id")["category"])
    bounds = category.map(fashion.plausible_price_range)
    assert (events["price"] >= bounds.str[0]).all() and (events["price"] <= bounds.str[1]).all()
    list_price = events["item_id"].map(items.set_index("item_id")["price"])
    discounted = events["price"] < list_price - 0.005
    assert discounted.any() and (events.loc[~discounted, "price"] == list_price[~discounted]).all()


def test_items_have_readable_titles_of_their_category() -> None:
    items = items_frame(build_world(TINY_STORE))
    assert set(items["category"]) == set(fashion.CATEGORIES)
    for category, title in zip(items["category"], items["title"], strict=True):
        assert title.endswith(fashion.NOUNS[category]) and len(title.split()) >= 4


def test_views_follow_the_planted_next_item(calm: pd.DataFrame) -> None:
    world = build_world(CALM)
    views = calm[calm["event_type"] == "view"].sort_values(["user_id", "event_ts", "event_id"])
    same_user = views["user_id"].to_numpy()[1:] == views["user_id"].to_numpy()[:-1]
    previous, current = views["item_id"].to_numpy()[:-1] - 1, views["item_id"].to_numpy()[1:] - 1
    followed = (world.item_next[previous] == current)[same_user].mean()
    assert followed > 0.8 * CALM.next_item_prob  # chance alone: a few percent
    assert (world.item_next != np.arange(CALM.items)).all()


@pytest.mark.parametrize(
    "overrides",
    [
        {"users": 0},
        {"items": 5},
        {"cart_rate": 1.5},
        {"views_per_session": 0.5},
        {"end_date": "2026-06-30"},
        {"campaigns": 5, "days": 4},
    ],
)
def test_store_config_refuses_nonsense(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        StoreConfig(**overrides)

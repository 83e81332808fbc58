"""The simulator's ground-truth response model on a tiny world."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipelines.errors import ConfigError, DataError
from pipelines.sources import TINY_STORE
from pipelines.sources.response import ResponseConfig, ResponseModel
from pipelines.sources.world import N_CATEGORIES, build_world

WORLD = build_world(TINY_STORE)


def _favourite_and_least(model: ResponseModel) -> tuple[np.ndarray, np.ndarray]:
    return model.log_taste.argmax(axis=1), model.log_taste.argmin(axis=1)


def test_users_click_their_favourite_category_more_than_their_least() -> None:
    model = ResponseModel(WORLD)
    users = np.arange(1, TINY_STORE.users + 1)
    best, worst = _favourite_and_least(model)
    zero = np.zeros(len(users))
    p_best = model.click_probability(users, best, zero)
    p_worst = model.click_probability(users, worst, zero)
    assert ((p_best > 0) & (p_best < 1)).all()
    assert (p_best > p_worst).all()


def test_position_scales_clicks_by_the_examination_probability_only() -> None:
    model = ResponseModel(WORLD, ResponseConfig(position_decay=0.7))
    users = np.arange(1, 51)
    cats = users % N_CATEGORIES
    q = np.full(50, 0.2)
    ratio = model.click_probability(users, cats, q, 3) / model.click_probability(users, cats, q, 1)
    assert np.allclose(ratio, 3**-0.7)


def test_hidden_quality_is_fixed_by_id_and_seed() -> None:
    ids = [f"c1-s{s}-Dress-r{r}" for s in range(20) for r in range(50)]
    model = ResponseModel(WORLD, ResponseConfig(quality_sd=0.35))
    q = model.creative_quality(ids)
    assert np.array_equal(q, ResponseModel(WORLD, ResponseConfig(quality_sd=0.35)).creative_quality(ids))
    assert q.std() == pytest.approx(0.35, rel=0.1) and abs(q.mean()) < 0.05
    other = ResponseModel(WORLD, ResponseConfig(seed=99)).creative_quality(ids)
    assert abs(np.corrcoef(q, other)[0, 1]) < 0.1
    items = np.arange(1, TINY_STORE.items + 1)
    assert np.array_equal(model.item_quality(items), model.item_quality(items.copy()))


def test_drawn_clicks_and_conversions_follow_the_true_probabilities() -> None:
    config = ResponseConfig(base_ctr=0.3, base_cvr=0.4)
    model = ResponseModel(WORLD, config)
    rng = np.random.default_rng(0)
    n = 200_000
    users = rng.integers(1, TINY_STORE.users + 1, size=n)
    cats = rng.integers(0, N_CATEGORIES, size=n)
    q = np.zeros(n)
    out = model.respond(users, cats, q, 1, rng)
    expected_clicks = model.click_probability(users, cats, q).sum()
    assert abs(out.clicked.sum() - expected_clicks) < 4 * np.sqrt(expected_clicks)
    assert not (out.converted & ~out.clicked).any()
    expected_conversions = (model.click_probability(users, cats, q) * model.conversion_probability(users, cats)).sum()
    assert abs(out.converted.sum() - expected_conversions) < 4 * np.sqrt(expected_conversions)
    assert np.array_equal(out.revenue > 0, out.converted)
    order_value = model.expected_order_value()
    mean_revenue = out.revenue[out.converted].mean()
    expected = order_value[cats[out.converted]].mean()
    assert mean_revenue == pytest.approx(expected, rel=0.1)


def test_recommended_items_respond_through_their_category() -> None:
    model = ResponseModel(WORLD)
    items = np.arange(1, 21)
    users = np.full(20, 7)
    direct = model.click_probability(users, WORLD.item_category[items - 1], model.item_quality(items), 2)
    assert np.array_equal(model.item_click_probability(users, items, 2), direct)


def test_unknown_users_and_bad_settings_are_refused() -> None:
    model = ResponseModel(WORLD)
    with pytest.raises(DataError, match="user ids"):
        model.click_probability(np.array([TINY_STORE.users + 1]), np.array([0]), np.zeros(1))
    with pytest.raises(DataError, match="1-based"):
        model.click_probability(np.array([1]), np.array([0]), np.zeros(1), 0)
    with pytest.raises(ConfigError, match="base_ctr"):
        dataclasses.replace(ResponseConfig(), base_ctr=1.0)

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from pipelines.delivery.policy import (
    beta_posterior,
    epsilon_greedy_shares,
    floor_shares,
    group_rates,
    thompson_shares,
    uniform_shares,
)
from pipelines.errors import ConfigError, DataError


@pytest.mark.parametrize("seed", range(5))
def test_floor_keeps_every_share_at_least_min_share_and_sums_to_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(24, 0.2))
    p[rng.integers(24, size=5)] = 0.0
    p /= p.sum()
    out = floor_shares(p, 0.01)
    assert out.min() >= 0.01 - 1e-15
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    # The floor only moves mass downwards from large to small: the order is kept.
    assert (np.diff(out[np.argsort(p, kind="stable")]) >= -1e-15).all()


def test_floor_leaves_shares_already_above_it_alone() -> None:
    p = np.array([0.5, 0.3, 0.2])
    assert np.allclose(floor_shares(p, 0.1), p)


def test_floor_pins_again_when_scaling_pushes_a_share_under_it() -> None:
    # First pass pins the zeros and scales 0.9, 0.1 to 0.72, 0.08; 0.08 is then under the floor too.
    assert np.allclose(floor_shares(np.array([0.9, 0.1, 0.0, 0.0]), 0.1), [0.7, 0.1, 0.1, 0.1])


def test_floor_scales_the_unpinned_shares_proportionally() -> None:
    assert np.allclose(floor_shares(np.array([0.6, 0.3, 0.1, 0.0]), 0.05), [0.57, 0.285, 0.095, 0.05])


def test_floor_at_one_over_k_is_uniform() -> None:
    assert np.allclose(floor_shares(np.array([1.0, 0.0, 0.0, 0.0]), 0.25), 0.25)


def test_floor_refuses_a_floor_that_cannot_sum_to_one() -> None:
    with pytest.raises(ConfigError, match="min_share"):
        floor_shares(np.array([0.5, 0.5]), 0.6)
    with pytest.raises(ConfigError, match="min_share"):
        floor_shares(np.array([0.5, 0.5]), 0.0)


def test_thompson_two_creatives_matches_the_closed_form_probability_of_being_best() -> None:
    clicks, impressions = np.array([12, 20]), np.array([600, 800])
    alpha, beta = beta_posterior(clicks, impressions, 0.02, 50.0)
    # P(X0 > X1) = integral of f0(x) F1(x) dx for independent Betas.
    exact, _ = integrate.quad(
        lambda x: stats.beta.pdf(x, alpha[0], beta[0]) * stats.beta.cdf(x, alpha[1], beta[1]), 0, 1
    )
    draws = 200_000
    shares = thompson_shares(clicks, impressions, 0.02, 50.0, 1e-6, np.random.default_rng(1), draws=draws)
    assert abs(shares[0] - exact) < 4 * np.sqrt(exact * (1 - exact) / draws)


def test_thompson_sends_traffic_to_a_clearly_better_creative_and_keeps_the_floor() -> None:
    clicks = np.array([10, 10, 60, 10])
    impressions = np.full(4, 1000)
    shares = thompson_shares(clicks, impressions, 0.02, 100.0, 0.01, np.random.default_rng(0))
    assert shares.sum() == pytest.approx(1.0)
    assert shares.min() >= 0.01 - 1e-15
    assert shares[2] == pytest.approx(0.97, abs=1e-9)


def test_thompson_without_data_is_uniform_within_monte_carlo_error() -> None:
    k, draws = 8, 40_000
    shares = thompson_shares(np.zeros(k), np.zeros(k), 0.02, 100.0, 0.001, np.random.default_rng(2), draws=draws)
    assert np.abs(shares - 1 / k).max() < 4 * np.sqrt((1 / k) * (1 - 1 / k) / draws)


def test_thompson_is_reproducible_with_the_same_seed() -> None:
    args = (np.array([3, 5, 0]), np.array([100, 120, 10]), np.array([0.03, 0.03, 0.05]), 20.0, 0.02)
    first = thompson_shares(*args, np.random.default_rng(5))
    assert np.array_equal(first, thompson_shares(*args, np.random.default_rng(5)))


def test_thompson_refuses_more_clicks_than_impressions() -> None:
    with pytest.raises(DataError, match="creative 1"):
        thompson_shares(np.array([1, 5]), np.array([10, 4]), 0.02, 10.0, 0.01, np.random.default_rng(0))


def test_thompson_refuses_a_degenerate_prior() -> None:
    with pytest.raises(ConfigError, match="prior"):
        thompson_shares(np.array([1]), np.array([10]), 0.0, 10.0, 0.5, np.random.default_rng(0))


def test_epsilon_greedy_gives_the_best_posterior_mean_the_rest() -> None:
    shares = epsilon_greedy_shares(np.array([1, 9, 3]), np.array([100, 100, 100]), 0.3, 0.05, 10.0)
    assert np.allclose(shares, [0.1, 0.8, 0.1])


def test_epsilon_greedy_splits_ties() -> None:
    shares = epsilon_greedy_shares(np.array([5, 5, 1, 0]), np.array([100, 100, 100, 0]), 0.2, 0.01, 10.0)
    assert np.allclose(shares, [0.05 + 0.4, 0.05 + 0.4, 0.05, 0.05])


def test_uniform_shares() -> None:
    assert np.allclose(uniform_shares(4), 0.25)
    with pytest.raises(DataError):
        uniform_shares(0)


def test_group_rates_pool_each_group_and_shrink_to_the_prior() -> None:
    rates = group_rates(np.array([2, 4, 0]), np.array([100, 100, 0]), np.array(["a", "a", "b"]), 0.05, 50.0)
    assert rates == pytest.approx([(6 + 2.5) / 250, (6 + 2.5) / 250, 0.05])

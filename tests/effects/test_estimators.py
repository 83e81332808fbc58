from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pipelines.effects.estimators import (
    WeightedSums,
    bootstrap_mean,
    bootstrap_mean_sparse,
    doubly_robust,
    dr_terms,
    ips,
    ips_from_sums,
    lift,
    mean_from_sums,
    snips,
    snips_from_sums,
    wilson,
    wilson_interval,
)
from pipelines.errors import DataError


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson).
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    est = wilson(k, n)
    assert est.value == pytest.approx(k / n)
    assert est.low == pytest.approx(low, abs=1e-4)
    assert est.high == pytest.approx(high, abs=1e-4)


def test_wilson_is_safe_at_zero_and_all_successes_and_empty() -> None:
    low, high = wilson_interval(np.array([0, 7, 0]), np.array([7, 7, 0]))
    assert low.tolist()[0] == 0.0 and high[0] < 1
    assert high.tolist()[1] == 1.0 and low[1] > 0
    assert (low[2], high[2]) == (0.0, 1.0)
    assert math.isnan(wilson(0, 0).value)
    with pytest.raises(DataError):
        wilson(5, 3)


# A small world: 2 contexts, 3 actions, Bernoulli rewards; logging and target policies per context.
P_X = np.array([0.3, 0.7])
MU = np.array([[0.2, 0.5, 0.9], [0.6, 0.1, 0.4]])
PI_0 = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
PI_E = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
Q_HAT = np.array([[0.3, 0.3, 0.3], [0.5, 0.2, 0.2]])  # a deliberately wrong reward model
TRUE_VALUE = float(P_X @ (PI_E * MU).sum(axis=1))


def _outcomes() -> list[tuple[float, int, int, int]]:
    """Every (probability, context, action, reward) of one logged impression."""
    return [
        (P_X[x] * PI_0[x, a] * (MU[x, a] if r else 1 - MU[x, a]), x, a, r)
        for x, a, r in itertools.product(range(2), range(3), range(2))
    ]


def _estimate(rows: tuple[tuple[float, int, int, int], ...], method: str) -> float:
    x = np.array([row[1] for row in rows])
    a = np.array([row[2] for row in rows])
    r = np.array([row[3] for row in rows], dtype=float)
    if method == "ips":
        return ips(r, PI_0[x, a], PI_E[x, a]).value
    return doubly_robust(r, PI_0[x, a], PI_E[x, a], Q_HAT[x, a], (PI_E * Q_HAT).sum(axis=1)[x]).value


@pytest.mark.parametrize("method", ["ips", "dr"])
def test_ips_and_dr_are_unbiased_by_exact_enumeration(method: str) -> None:
    expected = sum(
        math.prod(row[0] for row in rows) * _estimate(rows, method) for rows in itertools.product(_outcomes(), repeat=2)
    )
    assert expected == pytest.approx(TRUE_VALUE, abs=1e-12)


def test_snips_of_one_impression_is_its_reward_so_its_expectation_is_the_logging_value() -> None:
    # Self-normalising cancels the weight of a single impression: SNIPS is biased for tiny logs.
    expected = sum(
        row[0] * snips(np.array([float(row[3])]), PI_0[row[1], [row[2]]], PI_E[row[1], [row[2]]]).value
        for row in _outcomes()
    )
    assert expected == pytest.approx(float(P_X @ (PI_0 * MU).sum(axis=1)), abs=1e-12)
    assert abs(expected - TRUE_VALUE) > 0.05


def test_snips_bias_vanishes_as_the_log_grows() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    x = rng.choice(2, size=n, p=P_X)
    a = (rng.random(n)[:, None] > np.cumsum(PI_0[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < MU[x, a]).astype(float)
    est = snips(r, PI_0[x, a], PI_E[x, a])
    assert est.contains(TRUE_VALUE)
    assert abs(est.value - TRUE_VALUE) < 0.005


def test_estimators_of_the_logging_policy_itself_return_the_on_policy_mean() -> None:
    rng = np.random.default_rng(1)
    r = (rng.random(1_000) < 0.3).astype(float)
    p = rng.uniform(0.05, 1.0, size=1_000)
    assert ips(r, p, p).value == pytest.approx(r.mean())
    assert snips(r, p, p).value == pytest.approx(r.mean())
    assert ips(r, p, p).high - ips(r, p, p).low == pytest.approx(2 * 1.959964 * r.std(ddof=1) / math.sqrt(1_000))


def test_dr_with_a_perfect_reward_model_has_no_error() -> None:
    rng = np.random.default_rng(2)
    x = np.zeros(500, dtype=int)  # one context, so only the reward model's own terms remain
    a = rng.choice(3, size=500, p=PI_0[0])
    r = MU[0, a]  # deterministic rewards, which the reward model MU knows exactly
    est = doubly_robust(r, PI_0[x, a], PI_E[x, a], MU[x, a], (PI_E * MU).sum(axis=1)[x])
    assert est.value == pytest.approx((PI_E[0] * MU[0]).sum(), abs=1e-12)
    assert est.high - est.low == pytest.approx(0.0, abs=1e-9)


def test_dr_from_sums_of_its_terms_matches_the_rows() -> None:
    rng = np.random.default_rng(7)
    x = rng.choice(2, size=400, p=P_X)
    a = rng.choice(3, size=400)
    r = (rng.random(400) < MU[x, a]).astype(float)
    args = (r, np.full(400, 1 / 3), PI_E[x, a], Q_HAT[x, a], (PI_E * Q_HAT).sum(axis=1)[x])
    terms = dr_terms(*args)
    from_sums = mean_from_sums(len(terms), float(terms.sum()), float(terms @ terms), method="dr")
    assert from_sums.as_dict() == pytest.approx(doubly_robust(*args).as_dict())


def test_snips_is_invariant_to_scaling_the_target_probabilities() -> None:
    rng = np.random.default_rng(3)
    r, p0, pe = rng.random(200), rng.uniform(0.1, 1, 200), rng.uniform(0, 0.5, 200)
    assert snips(r, p0, pe).value == pytest.approx(snips(r, p0, 2 * pe).value)


def test_sums_of_groups_give_the_same_estimates_as_the_rows() -> None:
    rng = np.random.default_rng(4)
    r, p0, pe = (rng.random(300) < 0.2).astype(float), rng.uniform(0.1, 1, 300), rng.uniform(0, 1, 300)
    whole = WeightedSums.from_arrays(r, p0, pe)
    parts = WeightedSums.from_arrays(r[:100], p0[:100], pe[:100]) + WeightedSums.from_arrays(
        r[100:], p0[100:], pe[100:]
    )
    for estimator in (ips_from_sums, snips_from_sums):
        assert estimator(parts).as_dict() == pytest.approx(estimator(whole).as_dict())
    assert ips_from_sums(whole) == ips(r, p0, pe)


def test_ips_and_snips_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(5)
    n, runs = 2_000, 300
    covered = {"ips": 0, "snips": 0}
    for _ in range(runs):
        x = rng.choice(2, size=n, p=P_X)
        a = (rng.random(n)[:, None] > np.cumsum(PI_0[x], axis=1)).sum(axis=1)
        r = (rng.random(n) < MU[x, a]).astype(float)
        covered["ips"] += ips(r, PI_0[x, a], PI_E[x, a]).contains(TRUE_VALUE)
        covered["snips"] += snips(r, PI_0[x, a], PI_E[x, a]).contains(TRUE_VALUE)
    for method, hits in covered.items():
        assert 0.91 <= hits / runs <= 0.99, method


def test_off_policy_estimators_refuse_bad_propensities() -> None:
    with pytest.raises(DataError, match="propensities"):
        ips(np.array([1.0, 0.0]), np.array([0.5, 0.0]), np.array([0.5, 0.5]))
    with pytest.raises(DataError, match="length"):
        snips(np.array([1.0]), np.array([0.5, 0.5]), np.array([0.5, 0.5]))


def test_bootstrap_interval_matches_the_standard_error_of_the_mean() -> None:
    rng = np.random.default_rng(6)
    n = 20_000
    revenue = np.where(rng.random(n) < 0.02, rng.lognormal(3.5, 0.6, n), 0.0)
    est = bootstrap_mean(revenue, n_boot=4_000, seed=1)
    se = revenue.std() / math.sqrt(n)
    assert est.value == pytest.approx(revenue.mean())
    assert (est.high - est.low) == pytest.approx(2 * 1.959964 * se, rel=0.1)
    assert est.low < revenue.mean() < est.high


def test_bootstrap_from_non_zero_values_equals_the_full_bootstrap() -> None:
    values = np.array([0.0, 0.0, 12.5, 0.0, 40.0, 0.0, 0.0, 0.0])
    dense = bootstrap_mean(values, n_boot=500, seed=3)
    assert bootstrap_mean_sparse(np.array([12.5, 40.0]), 8, n_boot=500, seed=3) == dense
    assert bootstrap_mean_sparse(np.array([]), 10).as_dict() == {
        "value": 0.0,
        "low": 0.0,
        "high": 0.0,
        "n": 10,
        "method": "bootstrap",
    }


def test_lift_matches_the_katz_log_ratio_interval() -> None:
    # 50/1000 vs 25/1000: ratio 2, se(log) = sqrt(1/50 - 1/1000 + 1/25 - 1/1000) = 0.240832.
    est = lift(50, 1000, 25, 1000)
    assert est.value == pytest.approx(1.0)
    assert est.low == pytest.approx(math.exp(math.log(2) - 1.959964 * 0.240832) - 1, abs=1e-5)
    assert est.high == pytest.approx(2.20655, abs=1e-4)


def test_lift_stays_finite_when_the_control_has_no_click() -> None:
    est = lift(5, 1000, 0, 50)
    assert all(math.isfinite(v) for v in (est.value, est.low, est.high))
    assert est.low < est.value < est.high


def test_lift_refuses_impossible_counts() -> None:
    with pytest.raises(DataError, match="lift"):
        lift(5, 4, 1, 10)


def test_lift_without_a_success_in_either_arm_is_zero_with_a_wide_interval() -> None:
    # 0/110 vs 0/6: the Haldane-corrected ratio alone would read -94%, an artefact of the arms' sizes.
    est = lift(0, 110, 0, 6)
    assert est.value == 0.0
    assert est.low < -0.5 and est.high > 1.0

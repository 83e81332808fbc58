"""Estimates with 95% intervals: Wilson rates, bootstrap means, relative lift, and off-policy values.

Off-policy estimators (Dudík et al., "Doubly Robust Policy Evaluation and Learning", ICML 2011; Swaminathan
& Joachims, "The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015; the same definitions
as Open Bandit Pipeline's `obp.ope`) value a target policy from impressions logged by another policy, using
the importance weight w = target probability of the logged action / its logged propensity:

- IPS: mean(w r); unbiased, high variance when weights are large.
- SNIPS: sum(w r) / sum(w); slightly biased, far less variance, and exactly the on-policy mean when the
  target is the logging policy.
- DR: mean(q_target + w (r - q_logged)), with a reward model's prediction q_logged for the logged action and
  its expectation q_target under the target policy; unbiased whenever the propensities are right, and
  exact when the reward model is.

Intervals are normal (IPS, DR: the sample variance of the per-impression terms; SNIPS: the delta method).
A slice without a single click has terms that are all 0 and so an interval of width 0: such a slice says
nothing about the target policy, and callers should show its impression count, not a certainty.
Every estimator also takes per-group sums (`WeightedSums`, `mean_from_sums` for DR's terms), which PostgreSQL computes
with one GROUP BY, so the daily task never pulls one row per impression; the array forms call the same code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pipelines.errors import ConfigError, DataError

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
_BOOT_BLOCK = 2_000_000  # bootstrap counts held in memory at once


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, the number of units behind it and the method's name."""

    value: float
    low: float
    high: float
    n: int
    method: str

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _check_z(z: float) -> None:
    if not z > 0:
        raise ConfigError(f"z must be positive, got {z}")


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of each rate successes/n, vectorised; n = 0 gives the uninformative [0, 1].

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at 0 or n
    successes, which matters for creatives with few impressions and no click yet.
    """
    _check_z(z)
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if (m < 0).any() or (k < 0).any() or (k > m).any():
        raise DataError("rates need 0 <= successes <= n")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(m > 0, k / np.where(m > 0, m, 1), 0.0)
        z2 = z * z
        centre = (p + z2 / (2 * m)) / (1 + z2 / m)
        half = z / (1 + z2 / m) * np.sqrt(p * (1 - p) / m + z2 / (4 * m * m))
        low = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
        high = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    # At 0 or n successes the bound is exactly 0 or 1; rounding must not move it.
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == m, 1.0, high)
    return low, high


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """The rate successes/n with its Wilson interval (value NaN when n = 0)."""
    low, high = wilson_interval(np.asarray(successes), np.asarray(n), z)
    value = successes / n if n > 0 else math.nan
    return Estimate(value, float(low), float(high), int(n), "wilson")


def bootstrap_mean_sparse(
    nonzero_values: np.ndarray, n: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """Percentile-bootstrap mean of n values of which only the non-zero ones are given.

    Revenue per impression is mostly zeros: a resample of n values draws K ~ Binomial(n, m/n) of the m
    non-zero ones, then K of them uniformly with replacement, which is the same distribution as resampling
    all n rows. So the daily task passes the revenues of converting impressions and a count, not 10M rows.
    """
    values = np.asarray(nonzero_values, dtype=np.float64).ravel()
    m = len(values)
    if n < 1 or m > n:
        raise DataError(f"bootstrap needs n >= 1 and at most n non-zero values, got n={n} and {m} values")
    if not np.isfinite(values).all():
        raise DataError("bootstrap values must be finite")
    if n_boot < 1 or not 0 < level < 1:
        raise ConfigError(f"bootstrap needs n_boot >= 1 and level in (0, 1), got {n_boot} and {level}")
    mean = float(values.sum() / n)
    if m == 0:
        return Estimate(0.0, 0.0, 0.0, n, "bootstrap")
    rng = np.random.default_rng(seed)
    picks = rng.binomial(n, m / n, size=n_boot)
    sums = np.empty(n_boot)
    block = max(1, _BOOT_BLOCK // m)
    for start in range(0, n_boot, block):
        counts = rng.multinomial(picks[start : start + block], np.full(m, 1.0 / m))  # [replicates, m]
        sums[start : start + block] = counts @ values
    low, high = np.quantile(sums / n, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(mean, float(low), float(high), n, "bootstrap")


def bootstrap_mean(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Percentile-bootstrap mean of `values` (e.g. revenue per impression) with its `level` interval."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return bootstrap_mean_sparse(values[values != 0], len(values), n_boot, seed, level)


def mean_from_sums(n: int, total: float, total_sq: float, z: float = Z95, method: str = "mean") -> Estimate:
    """Mean of n terms from their sum and sum of squares, with a normal interval (infinite when n = 1)."""
    _check_z(z)
    if n < 1:
        raise DataError(f"{method}: no impressions to estimate from")
    mean = total / n
    return _normal(mean, max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.inf, n, z, method)


def mean_of_terms(terms: np.ndarray, z: float = Z95, method: str = "mean") -> Estimate:
    """`mean_from_sums` for terms in memory, with the two-pass variance (no cancellation when it is ~0)."""
    terms = np.asarray(terms, dtype=np.float64).ravel()
    _check_z(z)
    if len(terms) < 1:
        raise DataError(f"{method}: no impressions to estimate from")
    variance = float(terms.var(ddof=1)) if len(terms) > 1 else math.inf
    return _normal(float(terms.mean()), variance, len(terms), z, method)


def _normal(mean: float, variance: float, n: int, z: float, method: str) -> Estimate:
    half = z * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half, n, method)


@dataclass(frozen=True)
class WeightedSums:
    """Sums over logged impressions of w, w^2, w r, w^2 r and w^2 r^2: all that IPS and SNIPS need.

    Groups combine with `+`, so per-day or per-segment sums from SQL add up to any larger slice.
    """

    n: int
    sum_w: float
    sum_w2: float
    sum_wr: float
    sum_w2r: float
    sum_w2r2: float

    @classmethod
    def from_arrays(
        cls, rewards: np.ndarray, logging_propensity: np.ndarray, target_probability: np.ndarray
    ) -> WeightedSums:
        r, w = _rewards_and_weights(rewards, logging_propensity, target_probability)
        w2 = w * w
        return cls(len(r), float(w.sum()), float(w2.sum()), float(w @ r), float(w2 @ r), float(w2 @ (r * r)))

    def __add__(self, other: WeightedSums) -> WeightedSums:
        return WeightedSums(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(sums: WeightedSums) -> tuple[float, ...]:
    return (sums.n, sums.sum_w, sums.sum_w2, sums.sum_wr, sums.sum_w2r, sums.sum_w2r2)


def _rewards_and_weights(
    rewards: np.ndarray, logging_propensity: np.ndarray, target_probability: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=np.float64).ravel()
    p0 = np.asarray(logging_propensity, dtype=np.float64).ravel()
    pe = np.asarray(target_probability, dtype=np.float64).ravel()
    if not len(r) == len(p0) == len(pe):
        raise DataError(
            f"rewards, propensities and target probabilities differ in length: {len(r)}, {len(p0)}, {len(pe)}"
        )
    if not np.isfinite(r).all():
        raise DataError("rewards must be finite")
    if not ((p0 > 0) & (p0 <= 1)).all():
        bad = np.flatnonzero(~((p0 > 0) & (p0 <= 1)))
        raise DataError(
            f"logged propensities must be in (0, 1]; {len(bad)} are not, e.g. {p0[bad[0]]!r} at row {bad[0]}"
        )
    if not ((pe >= 0) & (pe <= 1)).all():
        raise DataError("target probabilities must be in [0, 1]")
    return r, pe / p0


def ips_from_sums(sums: WeightedSums, z: float = Z95) -> Estimate:
    """Inverse propensity scoring from group sums: mean(w r), normal interval."""
    return mean_from_sums(sums.n, sums.sum_wr, sums.sum_w2r2, z, "ips")


def snips_from_sums(sums: WeightedSums, z: float = Z95) -> Estimate:
    """Self-normalised IPS from group sums: sum(w r) / sum(w), delta-method interval."""
    _check_z(z)
    if sums.n < 1:
        raise DataError("snips: no impressions to estimate from")
    if sums.sum_w <= 0:
        raise DataError("snips: the target policy gives probability 0 to every logged action")
    value = sums.sum_wr / sums.sum_w
    if sums.n == 1:
        return Estimate(value, -math.inf, math.inf, 1, "snips")
    # sum over rows of (w r - value w)^2, expanded into the sums; / sum(w)^2 is the linearised variance.
    spread = max(sums.sum_w2r2 - 2 * value * sums.sum_w2r + value * value * sums.sum_w2, 0.0)
    half = z * math.sqrt(spread * sums.n / (sums.n - 1)) / sums.sum_w
    return Estimate(value, value - half, value + half, sums.n, "snips")


def ips(
    rewards: np.ndarray, logging_propensity: np.ndarray, target_probability: np.ndarray, z: float = Z95
) -> Estimate:
    """IPS value of the target policy from logged (reward, propensity, target probability of the action)."""
    return ips_from_sums(WeightedSums.from_arrays(rewards, logging_propensity, target_probability), z)


def snips(
    rewards: np.ndarray, logging_propensity: np.ndarray, target_probability: np.ndarray, z: float = Z95
) -> Estimate:
    """Self-normalised IPS value of the target policy, with its delta-method interval."""
    return snips_from_sums(WeightedSums.from_arrays(rewards, logging_propensity, target_probability), z)


def dr_terms(
    rewards: np.ndarray,
    logging_propensity: np.ndarray,
    target_probability: np.ndarray,
    predicted_reward: np.ndarray,
    expected_target_reward: np.ndarray,
) -> np.ndarray:
    """Per-impression doubly robust terms q_target + w (r - q_logged): their mean is the DR estimate."""
    r, w = _rewards_and_weights(rewards, logging_propensity, target_probability)
    q_logged = np.asarray(predicted_reward, dtype=np.float64).ravel()
    q_target = np.asarray(expected_target_reward, dtype=np.float64).ravel()
    if not len(q_logged) == len(q_target) == len(r):
        raise DataError("reward-model predictions must have one value per logged impression")
    if not (np.isfinite(q_logged).all() and np.isfinite(q_target).all()):
        raise DataError("reward-model predictions must be finite")
    return q_target + w * (r - q_logged)


def doubly_robust(
    rewards: np.ndarray,
    logging_propensity: np.ndarray,
    target_probability: np.ndarray,
    predicted_reward: np.ndarray,
    expected_target_reward: np.ndarray,
    z: float = Z95,
) -> Estimate:
    """Doubly robust value of the target policy, with a normal interval over its per-impression terms.

    `predicted_reward`: the reward model's prediction for the logged action; `expected_target_reward`: the
    model's expected reward under the target policy in the same context (sum over actions of pi(a) q(a)).
    """
    terms = dr_terms(rewards, logging_propensity, target_probability, predicted_reward, expected_target_reward)
    return mean_of_terms(terms, z, "dr")


def lift(treat_successes: int, treat_n: int, ctrl_successes: int, ctrl_n: int, z: float = Z95) -> Estimate:
    """Relative lift of the treatment's rate over the control's, rate_t / rate_c - 1, with a 95% interval.

    The interval is the log risk-ratio (Katz) interval, se = sqrt(1/a - 1/n_t + 1/c - 1/n_c). When either
    arm has no success (or no failure) every count gets Haldane's +0.5, so the estimate stays finite. With no
    success in either arm the data say nothing about the ratio (the corrected one would only echo the arms'
    sizes), so the lift is 0 with the corrected interval around it.
    """
    _check_z(z)
    a, n1, c, n2 = (float(x) for x in (treat_successes, treat_n, ctrl_successes, ctrl_n))
    if n1 < 1 or n2 < 1 or not (0 <= a <= n1 and 0 <= c <= n2):
        raise DataError(f"lift needs 0 <= successes <= n >= 1 in both arms, got {a:g}/{n1:g} and {c:g}/{n2:g}")
    if a in (0, n1) or c in (0, n2):
        a, n1, c, n2 = a + 0.5, n1 + 1.0, c + 0.5, n2 + 1.0
    log_ratio = 0.0 if treat_successes == ctrl_successes == 0 else math.log((a / n1) / (c / n2))
    se = math.sqrt(max(1 / a - 1 / n1 + 1 / c - 1 / n2, 0.0))
    return Estimate(
        math.exp(log_ratio) - 1,
        math.exp(log_ratio - z * se) - 1,
        math.exp(log_ratio + z * se) - 1,
        int(treat_n) + int(ctrl_n),
        "lift",
    )

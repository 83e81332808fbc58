"""Traffic shares over the creatives of one segment x placement: Thompson sampling and its baselines.

Each creative's click rate has the posterior Beta(m*s + clicks, (1 - m)*s + impressions - clicks), where the
prior mean m is the click rate of the creative's category (`group_rates`: pooled over the category's
creatives, itself shrunk towards a global rate) and s its strength in pseudo-impressions, so a new creative
starts at its category's rate instead of at zero or at a flat 50%. Thompson sampling gives each creative the
posterior probability that it is the best one (Russo et al., "A Tutorial on Thompson Sampling", 2018),
estimated by Monte Carlo with a caller-seeded generator so a rerun gives the same plan.

The returned shares are the propensities the ad server draws with. Every one is at least `min_share`
(`floor_shares`), so every creative keeps a positive propensity and any other policy over the same creatives
can be evaluated off-policy from the logs.
"""

from __future__ import annotations

import numpy as np

from pipelines.errors import ConfigError, DataError

DEFAULT_DRAWS = 10_000
_DRAW_BLOCK = 2_000_000  # posterior samples held in memory at once (16 MB)


def _counts(clicks: np.ndarray, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clicks = np.asarray(clicks, dtype=np.float64)
    impressions = np.asarray(impressions, dtype=np.float64)
    if clicks.ndim != 1 or clicks.shape != impressions.shape:
        raise DataError(
            f"clicks and impressions must be 1-d of equal length, got {clicks.shape} and {impressions.shape}"
        )
    if len(clicks) == 0:
        raise DataError("no creatives to allocate traffic over")
    if not (np.isfinite(clicks).all() and np.isfinite(impressions).all()):
        raise DataError("clicks and impressions must be finite")
    if (clicks < 0).any() or (clicks > impressions).any():
        bad = int(np.flatnonzero((clicks < 0) | (clicks > impressions))[0])
        raise DataError(
            f"clicks must lie in [0, impressions]; creative {bad} has {clicks[bad]:g} clicks "
            f"for {impressions[bad]:g} impressions"
        )
    return clicks, impressions


def _prior(prior_mean: float | np.ndarray, prior_strength: float, k: int) -> np.ndarray:
    mean = np.broadcast_to(np.asarray(prior_mean, dtype=np.float64), (k,))
    if not ((mean > 0) & (mean < 1)).all():
        raise ConfigError(f"prior click rates must lie in (0, 1), got {mean.min():g}..{mean.max():g}")
    if not prior_strength > 0:
        raise ConfigError(f"prior_strength must be positive (pseudo-impressions), got {prior_strength}")
    return mean


def beta_posterior(
    clicks: np.ndarray, impressions: np.ndarray, prior_mean: float | np.ndarray, prior_strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of each creative's Beta posterior over its click rate."""
    clicks, impressions = _counts(clicks, impressions)
    mean = _prior(prior_mean, prior_strength, len(clicks))
    return mean * prior_strength + clicks, (1 - mean) * prior_strength + impressions - clicks


def group_rates(
    clicks: np.ndarray, impressions: np.ndarray, groups: np.ndarray, prior_mean: float, prior_strength: float
) -> np.ndarray:
    """Per entry: its group's pooled click rate, shrunk towards `prior_mean` by `prior_strength` impressions.

    With `groups` the creatives' categories this is the category prior of `thompson_shares`: it is never 0
    or 1, so a category without clicks yet still gets a proper Beta prior.
    """
    clicks, impressions = _counts(clicks, impressions)
    _prior(prior_mean, prior_strength, 1)
    codes, index = np.unique(np.asarray(groups), return_inverse=True)
    group_clicks = np.bincount(index, weights=clicks, minlength=len(codes))
    group_impressions = np.bincount(index, weights=impressions, minlength=len(codes))
    rates = (group_clicks + prior_mean * prior_strength) / (group_impressions + prior_strength)
    return rates[index]


def floor_shares(probabilities: np.ndarray, min_share: float) -> np.ndarray:
    """`probabilities` with every entry raised to at least `min_share`, the rest scaled down to sum 1.

    Water-filling: entries under the floor are pinned to it and the remaining mass is shared by the others
    in proportion to their probabilities, repeated until no scaled entry falls under the floor (clipping then
    renormalising once would push some entries back under it).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    k = len(p)
    if k == 0 or (p < 0).any() or not np.isfinite(p).all():
        raise DataError("probabilities must be a non-empty array of finite non-negative numbers")
    if not 0 < min_share <= 1 / k:
        raise ConfigError(f"min_share must be in (0, 1/{k}] for {k} creatives, got {min_share}")
    pinned = np.zeros(k, dtype=bool)
    out = np.empty(k)
    while True:
        free = ~pinned
        mass = 1.0 - min_share * pinned.sum()
        total = p[free].sum()
        out[free] = mass * p[free] / total if total > 0 else mass / free.sum()
        out[pinned] = min_share
        under = free & (out < min_share)
        if not under.any():
            return out
        pinned |= under


def thompson_shares(
    clicks: np.ndarray,
    impressions: np.ndarray,
    prior_mean: float | np.ndarray,
    prior_strength: float,
    min_share: float,
    rng: np.random.Generator,
    draws: int = DEFAULT_DRAWS,
) -> np.ndarray:
    """Probability that each creative is the best under its Beta posterior, floored at `min_share`. [k], sum 1."""
    alpha, beta = beta_posterior(clicks, impressions, prior_mean, prior_strength)
    if draws < 1:
        raise ConfigError(f"draws must be at least 1, got {draws}")
    k = len(alpha)
    wins = np.zeros(k)
    block = max(1, _DRAW_BLOCK // k)
    for start in range(0, draws, block):
        samples = rng.beta(alpha, beta, size=(min(block, draws - start), k))  # [draws, creatives]
        wins += np.bincount(samples.argmax(axis=1), minlength=k)
    return floor_shares(wins / draws, min_share)


def epsilon_greedy_shares(
    clicks: np.ndarray,
    impressions: np.ndarray,
    epsilon: float,
    prior_mean: float | np.ndarray,
    prior_strength: float,
) -> np.ndarray:
    """1 - epsilon to the creative(s) with the best posterior mean (ties split), epsilon spread uniformly."""
    if not 0 < epsilon <= 1:
        raise ConfigError(f"epsilon must be in (0, 1] so every creative keeps a positive share, got {epsilon}")
    alpha, beta = beta_posterior(clicks, impressions, prior_mean, prior_strength)
    mean = alpha / (alpha + beta)
    best = np.isclose(mean, mean.max(), rtol=1e-12, atol=0.0)
    return epsilon / len(mean) + (1 - epsilon) * best / best.sum()


def uniform_shares(k: int) -> np.ndarray:
    """Equal shares over `k` creatives: the holdout's non-personalised policy."""
    if k < 1:
        raise DataError(f"no creatives to allocate traffic over (k={k})")
    return np.full(k, 1.0 / k)

"""Every knob of the closed loop's daily tasks (delivery planning and effect evaluation), production defaults."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import ConfigError

RECS_PLACEMENT = "recs_home"


@dataclass(frozen=True)
class DeliveryConfig:
    # Evidence: impressions of the last `history_days` days (as of the date), outcomes attributed within
    # the windows below; a click or conversion outside its window counts for nothing.
    history_days: int = 28
    click_window_hours: int = 24
    conversion_window_days: int = 7
    # Thompson sampling: each creative's Beta prior has the click rate of its category (at the placement)
    # as its mean and `prior_strength` pseudo-impressions; `default_click_rate` when nothing was shown yet.
    prior_strength: float = 200.0
    default_click_rate: float = 0.02
    thompson_draws: int = 4000
    # Every planned creative keeps at least this share, so every propensity is > 0 (off-policy evaluation
    # needs it); with k creatives the floor is min(min_share, 1 / k).
    min_share: float = 0.02
    # Impressions of one placement per user per day; the ad server enforces it (the plan carries it).
    frequency_cap: int = 3
    # The holdout arm: this share of users, by a keyed hash of the user id (pipelines.delivery.arms),
    # sees a non-personalised policy. A new key is a new experiment (everyone is reassigned).
    holdout_share: float = 0.05
    holdout_key: str = "holdout-v1"
    # The holdout's recommendation slot shows the most popular items (events in `history_days`).
    holdout_recs_items: int = 10
    # Effects: hit rate at this cut-off of yesterday's recommendations against today's first event per user.
    hr_k: int = 10
    # Revenue intervals: a bootstrap over users hashed into this many buckets (sums per bucket from SQL).
    bootstrap_samples: int = 1000
    bootstrap_buckets: int = 64

    def __post_init__(self) -> None:
        positive = (
            "history_days",
            "click_window_hours",
            "conversion_window_days",
            "thompson_draws",
            "frequency_cap",
            "holdout_recs_items",
            "hr_k",
            "bootstrap_samples",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"DeliveryConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.prior_strength <= 0:
            raise ConfigError(f"DeliveryConfig.prior_strength must be > 0, got {self.prior_strength}")
        if not 0.0 < self.default_click_rate < 1.0:
            raise ConfigError(f"DeliveryConfig.default_click_rate must be in (0, 1), got {self.default_click_rate}")
        if not 0.0 < self.min_share <= 0.5:
            raise ConfigError(f"DeliveryConfig.min_share must be in (0, 0.5], got {self.min_share}")
        if not 0.0 <= self.holdout_share < 0.5:
            raise ConfigError(f"DeliveryConfig.holdout_share must be in [0, 0.5), got {self.holdout_share}")
        if self.bootstrap_buckets < 2:
            raise ConfigError(f"DeliveryConfig.bootstrap_buckets must be at least 2, got {self.bootstrap_buckets}")
        if not self.holdout_key:
            raise ConfigError("DeliveryConfig.holdout_key must not be empty")

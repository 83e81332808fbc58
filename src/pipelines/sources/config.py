"""`StoreConfig`: every knob of the synthetic fashion store, with defaults for a small demo store.

Same config (seed included) -> the same rows, byte for byte. `block_users` and `chunk_rows` bound the
memory of generation: events are produced one (day, block of users) at a time and handed out in frames
of at most `chunk_rows` rows, so 1,000,000 users and 20,000,000 events never sit in memory together.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipelines.errors import ConfigError


@dataclass(frozen=True)
class StoreConfig:
    """Size, time span and behaviour of the generated store."""

    users: int = 5_000
    items: int = 1_000
    days: int = 60
    end_date: dt.date = dt.date(2026, 6, 30)  # the last business date; the store covers `days` days up to it
    seed: int = 7
    sessions_per_user_day: float = 0.2  # mean sessions a day of an active user on an average weekday
    views_per_session: float = 4.0  # mean views in a session (1 + geometric)
    max_views_per_session: int = 20
    cart_rate: float = 0.15  # share of views followed by add-to-cart
    purchase_rate: float = 0.45  # share of carts that end in a purchase
    popularity_exponent: float = 1.1  # Zipf exponent of item popularity within a category
    affinity_concentration: float = 2.0  # Dirichlet concentration of user category tastes around the persona
    personas: int = 6  # latent taste groups; campaign target segment ids are 0..personas-1
    next_item_prob: float = 0.35  # chance that a view follows the previous item's planted "next item"
    new_user_share: float = 0.2  # share of users who sign up inside the window (the rest signed up before)
    campaigns: int = 3
    campaign_lift: float = 0.5  # extra sessions of targeted users while a campaign runs (0.5 = +50%)
    campaign_focus: float = 0.4  # share of a targeted user's fresh views that go to the campaign's categories
    block_users: int = 100_000  # users generated together for one day (bounds memory)
    chunk_rows: int = 250_000  # the most event rows in one generated frame (one COPY)

    def __post_init__(self) -> None:
        positive = ("users", "items", "days", "personas", "block_users", "chunk_rows", "max_views_per_session")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"StoreConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.items < 10:
            raise ConfigError(f"StoreConfig.items must be at least 10 (one per category), got {self.items}")
        rates = ("cart_rate", "purchase_rate", "next_item_prob", "new_user_share", "campaign_focus")
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"StoreConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.sessions_per_user_day <= 0 or self.views_per_session < 1:
            raise ConfigError("StoreConfig needs sessions_per_user_day > 0 and views_per_session >= 1")
        if self.campaigns < 0 or self.campaign_lift < 0:
            raise ConfigError("StoreConfig.campaigns and campaign_lift must not be negative")
        if self.campaigns > self.days:
            raise ConfigError(f"StoreConfig.campaigns ({self.campaigns}) cannot exceed days ({self.days})")
        if not isinstance(self.end_date, dt.date) or isinstance(self.end_date, dt.datetime):
            raise ConfigError(f"StoreConfig.end_date must be a date, got {self.end_date!r}")

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)

    def expected_events(self) -> float:
        """Rough number of events the config generates (for sizing; campaigns and signups ignored)."""
        per_session = self.views_per_session * (1 + self.cart_rate * (1 + self.purchase_rate))
        active_share = 1 - self.new_user_share / 2
        return self.users * self.days * self.sessions_per_user_day * per_session * active_share


# A store that other packages' tests generate and load in about a second.
TINY_STORE = StoreConfig(users=300, items=120, days=21, end_date=dt.date(2026, 6, 30), sessions_per_user_day=0.3)

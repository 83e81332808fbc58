"""The simulated store's ad server and recommendation slot for one business date: its impressions and outcomes.

For business date D it does what a real ad server does with the plan that the run of D-1 wrote:

1. who visits: each user of the `World` who has signed up starts Poisson(activity x weekday factor)
   sessions, and visits when that is at least one;
2. which arm and segment: the holdout arm by `pipelines.delivery.arms.holdout_mask` with the delivery
   stage's key and share (the planner's own assignment); the segment from `user_profiles` as of D-1;
3. what is shown: per creative placement of the plan (`planned_creatives`, serve_date D), as many
   impressions as the user's sessions (at most the plan's frequency cap), each creative drawn with the
   plan's share of the user's segment and arm, which is the propensity logged. Without a plan for D (the
   loop's first day) every approved creative of D-1's live campaigns gets an equal share. The
   recommendation slot shows the first `recs_slots` items: yesterday's `recommendations` for the
   personalised arm, the plan's popularity list (else the last week's most viewed items) for the holdout;
4. what came of it: clicks, conversions and revenue from `pipelines.sources.response` (the World's true
   tastes and hidden creative quality, with position bias). The true probabilities are never written.

Both logs load with batch_date D through `replace_delivery_batches` (COPY, one transaction). Randomness
is seeded by (store seed, D) and every read is as of D-1, so a rerun of D loads the same rows again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.compute import derive_seed
from pipelines.errors import ConfigError
from pipelines.quality.checks import IMPRESSION_COLUMNS
from pipelines.sources import fashion
from pipelines.sources.load import LoadSummary, replace_delivery_batches
from pipelines.warehouse.reads import day_bounds, read_frame

if TYPE_CHECKING:
    from pipelines.delivery.config import DeliveryConfig
    from pipelines.sources.response import ResponseModel
    from pipelines.sources.world import World

log = logging.getLogger(__name__)

RECS_PLACEMENT = "recs_home"
NO_PLAN_VERSION = "no-plan"  # policy_version of what is shown on a day without a delivery plan
MAX_IMPRESSIONS_PER_DAY = 10**8  # impression ids are D's ordinal * 10^8 + n, unique across days
HOUR_CDF = np.cumsum(fashion.HOUR_WEIGHTS) / sum(fashion.HOUR_WEIGHTS)
CATEGORY_INDEX = {name: index for index, name in enumerate(fashion.CATEGORIES)}


@dataclass(frozen=True)
class SimulationConfig:
    """How the simulated ad server and shoppers behave, beyond the World and the response model."""

    recs_slots: int = 3  # positions of the recommendation slot shown per visit
    popularity_days: int = 7  # the holdout's fallback popularity list counts views of these days
    click_delay_s: float = 90.0  # mean seconds from an impression to its click
    conversion_delay_s: float = 1200.0  # mean seconds from a click to its conversion

    def __post_init__(self) -> None:
        if self.recs_slots < 1 or self.popularity_days < 1:
            raise ConfigError("SimulationConfig.recs_slots and popularity_days must be at least 1")
        if self.click_delay_s < 0 or self.conversion_delay_s < 0:
            raise ConfigError("SimulationConfig delays must not be negative")


@dataclass(frozen=True)
class Shown:
    """Impressions of one kind before ids and outcomes: flat arrays, one entry per impression."""

    user: np.ndarray  # [n] user_id (1-based)
    category: np.ndarray  # [n] category index of what was shown
    quality: np.ndarray  # [n] hidden quality (log-odds) of what was shown
    frame: pd.DataFrame  # [n] the impression columns other than batch_date, impression_id and ts


def simulate_day(
    engine: Engine,
    world: World,
    day: dt.date,
    delivery: DeliveryConfig,
    response: ResponseModel,
    config: SimulationConfig = SimulationConfig(),  # noqa: B008 (frozen)
) -> LoadSummary:
    """Simulate business date `day` from the plan of `day - 1` and load its impressions and outcomes."""
    from pipelines.delivery.arms import ARMS, holdout_mask

    rng = np.random.default_rng(derive_seed("simulate", world.config.seed, day.isoformat()))
    users, sessions = visitors(world, day, rng)
    previous = day - dt.timedelta(days=1)
    segment = _segments(engine, previous, users)
    arm = np.asarray(ARMS, dtype=object)[holdout_mask(users, delivery.holdout_key, delivery.holdout_share).astype(int)]
    parts = [
        *_creatives(engine, day, users, sessions, segment, arm, response, rng),
        *_recommendations(engine, world, day, users, segment, arm, response, config),
    ]
    impressions, outcomes = _log(day, parts, response, config, rng)
    summary = replace_delivery_batches(engine, "simulated store", impressions, outcomes, dates=[day])
    log.info(
        "simulated %s: %d visitors, %d impressions (%s), %d clicks",
        day,
        len(users),
        len(impressions),
        ", ".join(f"{k} {v}" for k, v in impressions["placement"].value_counts().sort_index().items()),
        int(outcomes["click_ts"].notna().sum()),
    )
    return summary


def visitors(world: World, day: dt.date, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, sessions) of the users who visit on `day`: signed up, and at least one session drawn."""
    day_index = (day - world.config.start_date).days
    rate = world.user_activity * fashion.WEEKDAY_FACTORS[day.weekday()]
    sessions = rng.poisson(np.where(world.user_signup_day <= day_index, rate, 0.0))
    visiting = np.flatnonzero(sessions > 0)
    return (visiting + 1).astype(np.int64), sessions[visiting]


def _segments(engine: Engine, as_of: dt.date, users: np.ndarray) -> np.ndarray:
    """Each user's segment in the profiles of `as_of`; -1 for a user without a profile."""
    profiles = read_frame(
        engine, "SELECT user_id, segment_id FROM user_profiles WHERE as_of_date = :d", {"d": as_of}
    ).set_index("user_id")["segment_id"]
    return profiles.reindex(users).fillna(-1).to_numpy(dtype=np.int64)


def _creative_plan(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The day's planned, approved creatives; uniform over D-1's approved creatives of live campaigns when
    no plan was written for the day. Propensities are renormalised per (segment, placement, arm) over the
    creatives still approved, which is what the server really draws with."""
    plan = read_frame(
        engine,
        """SELECT segment_id, placement, arm, creative_id, campaign_id, category, propensity, frequency_cap,
                  policy, policy_version
           FROM planned_creatives WHERE serve_date = :d
           ORDER BY segment_id, placement, arm, creative_id""",
        {"d": day},
    )
    if plan.empty:
        from pipelines.delivery.arms import ARMS

        approved = read_frame(
            engine,
            """SELECT DISTINCT a.segment_id, 'banner_' || a.banner_size AS placement, a.creative_id,
                      a.campaign_id, a.category
               FROM approved_creatives AS a JOIN campaigns AS c USING (campaign_id)
               WHERE a.campaign_date = :previous AND :d BETWEEN c.start_date AND c.end_date
               ORDER BY 1, 2, 3""",
            {"d": day, "previous": day - dt.timedelta(days=1)},
        )
        plan = pd.concat([approved.assign(arm=a) for a in ARMS], ignore_index=True)
        plan = plan.assign(propensity=1.0, frequency_cap=1, policy="uniform", policy_version=NO_PLAN_VERSION)
    group = ["segment_id", "placement", "arm"]
    plan["propensity"] = plan["propensity"] / plan.groupby(group)["propensity"].transform("sum")
    return plan


def _creatives(
    engine: Engine,
    day: dt.date,
    users: np.ndarray,
    sessions: np.ndarray,
    segment: np.ndarray,
    arm: np.ndarray,
    response: ResponseModel,
    rng: np.random.Generator,
) -> list[Shown]:
    """Banner impressions: per placement and arm, each visitor's segment's creatives (else those planned for
    every segment, -1), drawn with the plan's shares, one per session up to the frequency cap."""
    plan = _creative_plan(engine, day)
    shown = []
    for (placement, arm_name), options in plan.groupby(["placement", "arm"], sort=True):
        planned = set(options["segment_id"])
        target = np.where(np.isin(segment, list(planned)), segment, -1)
        for segment_id, creatives in options.groupby("segment_id", sort=True):
            who = np.flatnonzero((target == segment_id) & (arm == arm_name))
            if not len(who):
                continue
            cap = int(creatives["frequency_cap"].iloc[0])
            repeat = np.minimum(sessions[who], cap)
            viewer = np.repeat(who, repeat)  # [impressions] index into users
            pick = rng.choice(len(creatives), size=len(viewer), p=creatives["propensity"].to_numpy())
            chosen = creatives.iloc[pick].reset_index(drop=True)
            frame = pd.DataFrame(
                {
                    "user_id": users[viewer],
                    "placement": placement,
                    "position": np.ones(len(viewer), dtype=np.int16),
                    "creative_id": chosen["creative_id"].to_numpy(dtype=object),
                    "item_id": pd.array([pd.NA] * len(viewer), dtype="Int64"),
                    "campaign_id": chosen["campaign_id"].astype("Int64").to_numpy(),
                    "segment_id": pd.array(segment[viewer], dtype="Int32"),
                    "policy": chosen["policy"].to_numpy(dtype=object),
                    "policy_version": chosen["policy_version"].to_numpy(dtype=object),
                    "propensity": chosen["propensity"].to_numpy(dtype=np.float64),
                    "arm": arm_name,
                }
            )
            category = chosen["category"].map(CATEGORY_INDEX).to_numpy(dtype=np.int64)
            quality = response.creative_quality(list(creatives["creative_id"]))[pick]  # hashed once per creative
            shown.append(Shown(users[viewer], category, quality, frame))
    return shown


def _recommendations(
    engine: Engine,
    world: World,
    day: dt.date,
    users: np.ndarray,
    segment: np.ndarray,
    arm: np.ndarray,
    response: ResponseModel,
    config: SimulationConfig,
) -> list[Shown]:
    """The recommendation slot, once per visitor: yesterday's list for the personalised arm, a popularity
    list for the holdout. A list is the policy's deterministic output, so each slot's propensity is 1."""
    from pipelines.delivery.arms import HOLDOUT, PERSONALISED

    previous = day - dt.timedelta(days=1)
    lists = read_frame(
        engine,
        """SELECT user_id, rank AS position, item_id, model_version AS policy_version
           FROM recommendations WHERE as_of_date = :d AND rank <= :k""",
        {"d": previous, "k": config.recs_slots},
    ).assign(policy="recommendations")
    index = pd.Series(np.arange(len(users)), index=users)
    personal = lists[lists["user_id"].isin(users[arm == PERSONALISED])]
    holdout_users = users[arm == HOLDOUT]
    popular = _popularity_list(engine, day, config)
    holdout = pd.DataFrame(
        {
            "user_id": np.repeat(holdout_users, len(popular)),
            "position": np.tile(popular["position"].to_numpy(), len(holdout_users)),
            "item_id": np.tile(popular["item_id"].to_numpy(), len(holdout_users)),
            "policy_version": np.tile(popular["policy_version"].to_numpy(), len(holdout_users)),
            "policy": np.tile(popular["policy"].to_numpy(), len(holdout_users)),
        }
    )
    served = pd.concat([personal, holdout], ignore_index=True).sort_values(["user_id", "position"], kind="stable")
    if served.empty:
        return []
    user = served["user_id"].to_numpy(dtype=np.int64)
    item = served["item_id"].to_numpy(dtype=np.int64)
    at = index.loc[user].to_numpy()
    frame = pd.DataFrame(
        {
            "user_id": user,
            "placement": RECS_PLACEMENT,
            "position": served["position"].to_numpy(dtype=np.int16),
            "creative_id": None,
            "item_id": pd.array(item, dtype="Int64"),
            "campaign_id": pd.array([pd.NA] * len(served), dtype="Int64"),
            "segment_id": pd.array(segment[at], dtype="Int32"),
            "policy": served["policy"].to_numpy(dtype=object),
            "policy_version": served["policy_version"].to_numpy(dtype=object),
            "propensity": 1.0,
            "arm": arm[at],
        }
    )
    return [Shown(user, world.item_category[item - 1].astype(np.int64), response.item_quality(item), frame)]


def _popularity_list(engine: Engine, day: dt.date, config: SimulationConfig) -> pd.DataFrame:
    """The holdout's list: the plan's popularity items for the slot, else the most viewed items of the last
    `popularity_days` days up to D-1 (ties by item id)."""
    planned = read_frame(
        engine,
        """SELECT position, item_id, policy, policy_version FROM delivery_plan
           WHERE serve_date = :d AND placement = :p AND arm = 'holdout' AND item_id IS NOT NULL AND position <= :k
           ORDER BY position, item_id""",
        {"d": day, "p": RECS_PLACEMENT, "k": config.recs_slots},
    ).drop_duplicates("position")
    if not planned.empty:
        return planned
    start, _ = day_bounds(day - dt.timedelta(days=config.popularity_days))
    end, _ = day_bounds(day)
    counted = read_frame(
        engine,
        """SELECT item_id FROM events WHERE event_ts >= :start AND event_ts < :end
           GROUP BY item_id ORDER BY count(*) DESC, item_id LIMIT :k""",
        {"start": start, "end": end, "k": config.recs_slots},
    )
    return counted.assign(position=np.arange(1, len(counted) + 1), policy="popularity", policy_version=NO_PLAN_VERSION)


def _log(
    day: dt.date, parts: list[Shown], response: ResponseModel, config: SimulationConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impression and outcome frames of the day: times of day, ids in time order, the shoppers' responses."""
    if not parts:
        empty: dict[str, Any] = {c: [] for c in IMPRESSION_COLUMNS}
        return pd.DataFrame(empty), pd.DataFrame(columns=["batch_date", "impression_id", "click_ts"])
    frame = pd.concat([part.frame for part in parts], ignore_index=True)
    user = np.concatenate([part.user for part in parts])
    category = np.concatenate([part.category for part in parts])
    quality = np.concatenate([part.quality for part in parts])
    n = len(frame)
    if n >= MAX_IMPRESSIONS_PER_DAY:
        raise ConfigError(f"{n:,} impressions in a day: impression ids allow fewer than {MAX_IMPRESSIONS_PER_DAY:,}")
    hour = np.searchsorted(HOUR_CDF, rng.random(n), side="right")
    second = (hour * 3600 + rng.integers(0, 3600, size=n)).astype(np.int64)
    order = np.argsort(second, kind="stable")
    frame, user, category, quality, second = (
        frame.iloc[order].reset_index(drop=True),
        user[order],
        category[order],
        quality[order],
        second[order],
    )
    responses = response.respond(user, category, quality, frame["position"].to_numpy(), rng)
    midnight = np.datetime64(day, "us")
    end_us = np.int64(86_400 * 10**6 - 1)  # outcomes of the simulated day stay inside it
    shown_us = second * 10**6
    click_us = np.minimum(shown_us + (5 + rng.exponential(config.click_delay_s, n)) * 1e6, end_us).astype(np.int64)
    conversion_us = np.minimum(click_us + (30 + rng.exponential(config.conversion_delay_s, n)) * 1e6, end_us)
    impression_id = day.toordinal() * MAX_IMPRESSIONS_PER_DAY + np.arange(n, dtype=np.int64)

    def stamps(us: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(midnight + us.astype("timedelta64[us]")).tz_localize("UTC")

    impressions = frame.assign(batch_date=day, impression_id=impression_id, ts=stamps(shown_us))[
        list(IMPRESSION_COLUMNS)
    ]
    clicked = np.flatnonzero(responses.clicked)
    converted = responses.converted[clicked]
    outcomes = pd.DataFrame(
        {
            "batch_date": day,
            "impression_id": impression_id[clicked],
            "click_ts": stamps(click_us[clicked]),
            "conversion_ts": stamps(conversion_us[clicked].astype(np.int64)).where(converted, pd.NaT),
            "revenue": np.where(converted, np.round(responses.revenue[clicked], 2), np.nan),
        }
    )
    return impressions, outcomes

"""The effect report of business date D: what D's impressions did, with 95% intervals, in `effect_reports`.

Every figure comes from sums that PostgreSQL computes with GROUP BY over D's impressions and the outcomes
attributed to them as of D (`pipelines.effects.attribution`); only the revenues of converting impressions
come out one by one, for the bootstrap. The report holds:

- rate: CTR (Wilson), CVR of clicks (Wilson) and revenue per impression (bootstrap) per creative x segment x
  placement x arm (the recommendation slot's rows have no creative);
- lift: the personalised arm's click and conversion rates over the holdout's, per placement;
- recs: the recommendation slot's click rate per arm, and HR@K of D-1's recommendations against each
  user's first event of D (`pipelines.ranking`, the training metric measured on real future behaviour);
- ope: IPS, SNIPS and DR click rates of the candidate plan (written on D for D + 1) and of the live plan
  (written on D - 1 for D) on D's personalised logs, with the live plan's posterior means as reward model.

A day without impressions (a store without the loop) gets an empty report, and the summary says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.compute import derive_seed
from pipelines.delivery.arms import HOLDOUT, PERSONALISED
from pipelines.delivery.config import RECS_PLACEMENT, DeliveryConfig
from pipelines.effects.attribution import LOGGED, logged_params
from pipelines.effects.estimators import (
    Estimate,
    WeightedSums,
    bootstrap_mean_sparse,
    ips_from_sums,
    lift,
    mean_from_sums,
    snips_from_sums,
    wilson,
)
from pipelines.ranking import UNRANKED, metrics_from_ranks
from pipelines.warehouse.partitions import replace_partition
from pipelines.warehouse.reads import day_bounds

log = logging.getLogger(__name__)

TABLE = "effect_reports"
COLUMNS = [
    "kind",
    "metric",
    "placement",
    "segment_id",
    "creative_id",
    "arm",
    "policy",
    "value",
    "low",
    "high",
    "n",
    "method",
]
GROUP = ["placement", "segment_id", "creative_id", "arm"]

_RATES = f"""
WITH {LOGGED}
SELECT placement, segment_id, creative_id, arm, count(*) AS n,
       count(*) FILTER (WHERE clicked) AS clicks, count(*) FILTER (WHERE converted) AS conversions,
       array_agg(revenue::float8) FILTER (WHERE converted AND revenue <> 0) AS revenues
FROM logged
GROUP BY placement, segment_id, creative_id, arm
ORDER BY placement, segment_id, creative_id, arm
"""

_OPE = f"""
WITH {LOGGED}
SELECT segment_id, placement, creative_id, propensity, count(*) AS n, count(*) FILTER (WHERE clicked) AS clicks
FROM logged
WHERE arm = :arm AND creative_id IS NOT NULL
GROUP BY segment_id, placement, creative_id, propensity
"""

_PLAN = """
SELECT segment_id, placement, creative_id, share, posterior_mean FROM delivery_plan
WHERE as_of_date = :d AND arm = :arm AND creative_id IS NOT NULL
"""

# Each user's first event of D, and the best rank it had in the user's recommendations of D - 1 (NULL: absent).
_NEXT_ITEM_RANKS = """
WITH firsts AS (
    SELECT DISTINCT ON (e.user_id) e.user_id, e.item_id
    FROM events AS e
    WHERE e.event_ts >= :start AND e.event_ts < :end
      AND EXISTS (SELECT 1 FROM recommendations AS r WHERE r.as_of_date = :prev AND r.user_id = e.user_id)
    ORDER BY e.user_id, e.event_ts, e.event_id
)
SELECT hit.rank, count(*) AS users
FROM firsts AS f
LEFT JOIN LATERAL (
    SELECT min(r.rank) AS rank FROM recommendations AS r
    WHERE r.as_of_date = :prev AND r.user_id = f.user_id AND r.item_id = f.item_id
) AS hit ON true
GROUP BY hit.rank
"""


def _row(kind: str, metric: str, estimate: Estimate, **key: Any) -> dict[str, Any]:
    value = None if math.isnan(estimate.value) else estimate.value
    return {
        "kind": kind,
        "metric": metric,
        **key,
        "value": value,
        "low": estimate.low if value is not None else None,
        "high": estimate.high if value is not None else None,
        "n": estimate.n,
        "method": estimate.method,
    }


def rate_rows(groups: pd.DataFrame, as_of: dt.date, config: DeliveryConfig) -> list[dict[str, Any]]:
    rows = []
    for g in groups.itertuples(index=False):
        key = {name: getattr(g, name) for name in GROUP}
        revenues = np.asarray(g.revenues if isinstance(g.revenues, list) else [], dtype=np.float64)
        seed = derive_seed("effects", as_of, *key.values())
        rows += [
            _row("rate", "ctr", wilson(g.clicks, g.n), **key),
            _row("rate", "cvr", wilson(g.conversions, g.clicks), **key),
            _row(
                "rate",
                "revenue_per_impression",
                bootstrap_mean_sparse(revenues, int(g.n), config.bootstrap_samples, seed),
                **key,
            ),
        ]
    return rows


def lift_rows(groups: pd.DataFrame) -> list[dict[str, Any]]:
    """Personalised over holdout per placement, for clicks and conversions per impression."""
    rows = []
    by_arm = groups.groupby(["placement", "arm"])[["n", "clicks", "conversions"]].sum()
    for placement in sorted(groups["placement"].dropna().unique()):
        if (placement, PERSONALISED) not in by_arm.index or (placement, HOLDOUT) not in by_arm.index:
            continue
        treat, ctrl = by_arm.loc[(placement, PERSONALISED)], by_arm.loc[(placement, HOLDOUT)]
        for metric, column in (("ctr", "clicks"), ("conversion_rate", "conversions")):
            estimate = lift(int(treat[column]), int(treat["n"]), int(ctrl[column]), int(ctrl["n"]))
            rows.append(_row("lift", metric, estimate, placement=placement, arm=PERSONALISED))
    return rows


def recs_rows(engine: Engine, groups: pd.DataFrame, as_of: dt.date, config: DeliveryConfig) -> list[dict[str, Any]]:
    """The recommendation slot's click rate per arm, and the offline HR@K of D - 1's recommendations."""
    rows = []
    slot = groups[groups["placement"] == RECS_PLACEMENT].groupby("arm")[["n", "clicks"]].sum()
    for arm, counts in slot.iterrows():
        rows.append(
            _row(
                "recs", "click_rate", wilson(int(counts["clicks"]), int(counts["n"])), placement=RECS_PLACEMENT, arm=arm
            )
        )
    start, end = day_bounds(as_of)
    params = {"start": start, "end": end, "prev": as_of - dt.timedelta(days=1)}
    with engine.connect() as conn:
        ranks = conn.execute(sa.text(_NEXT_ITEM_RANKS), params).fetchall()
    users = np.array([r.users for r in ranks], dtype=np.int64)
    if users.sum() > 0:
        rank = np.array([UNRANKED + 1 if r.rank is None else r.rank for r in ranks], dtype=np.int64)
        greater = np.repeat(rank - 1, users)  # items ranked above each user's next item
        name = f"hr@{config.hr_k}"
        value = metrics_from_ranks(greater, np.zeros_like(greater), None, [name])[name]
        interval = wilson(int(round(value * len(greater))), len(greater))
        rows.append(
            _row(
                "recs",
                name,
                Estimate(value, interval.low, interval.high, interval.n, "wilson"),
                placement=RECS_PLACEMENT,
            )
        )
    return rows


def _plan(engine: Engine, day: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(_PLAN), conn, params={"d": day, "arm": PERSONALISED})


def ope_rows(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> list[dict[str, Any]]:
    """IPS, SNIPS and DR click rates of the candidate and the live plan on D's personalised logs.

    A plan is valued on the impressions of the segments and placements it covers. The reward model
    is the live plan's posterior mean per creative (as of D - 1: it has not seen D's outcomes); a
    creative it does not know gets the mean over its context's creatives, else `default_click_rate`.
    """
    with engine.connect() as conn:
        logged = pd.read_sql_query(
            sa.text(_OPE), conn, params={**logged_params(config, as_of, as_of, as_of), "arm": PERSONALISED}
        )
    if logged.empty:
        return []
    live = _plan(engine, as_of - dt.timedelta(days=1))
    reward = live.set_index(["segment_id", "placement", "creative_id"])["posterior_mean"]
    context_reward = live.groupby(["segment_id", "placement"])["posterior_mean"].mean()
    rows = []
    for policy, plan in (("candidate", _plan(engine, as_of)), ("live", live)):
        if plan.empty:
            continue
        sums, dr_total, dr_sq, n = None, 0.0, 0.0, 0
        for (segment_id, placement), actions in plan.groupby(["segment_id", "placement"]):
            seen = logged[(logged["segment_id"] == segment_id) & (logged["placement"] == placement)]
            if seen.empty:
                continue
            fallback = context_reward.get((segment_id, placement), config.default_click_rate)
            q = {
                c: reward.get((segment_id, placement, c), fallback)
                for c in set(actions["creative_id"]) | set(seen["creative_id"])
            }
            target = dict(zip(actions["creative_id"], actions["share"], strict=True))
            q_target = sum(share * q[c] for c, share in target.items())
            for g in seen.itertuples(index=False):
                w = target.get(g.creative_id, 0.0) / g.propensity
                clicks, shown = int(g.clicks), int(g.n)
                group = WeightedSums(shown, shown * w, shown * w * w, clicks * w, clicks * w * w, clicks * w * w)
                sums = group if sums is None else sums + group
                # DR terms q_target + w (r - q_logged): `clicks` rows with r = 1, the rest with r = 0.
                hit, miss = q_target + w * (1 - q[g.creative_id]), q_target - w * q[g.creative_id]
                dr_total += clicks * hit + (shown - clicks) * miss
                dr_sq += clicks * hit * hit + (shown - clicks) * miss * miss
                n += shown
        if sums is None:
            continue
        estimates = [ips_from_sums(sums), mean_from_sums(n, dr_total, dr_sq, method="dr")]
        if sums.sum_w > 0:
            estimates.append(snips_from_sums(sums))
        rows += [_row("ope", e.method, e, policy=policy) for e in estimates]
    return rows


def evaluate_effects(engine: Engine, as_of: dt.date, config: DeliveryConfig) -> dict[str, Any]:
    """Write D's `effect_reports` partition and return a small summary."""
    started = time.perf_counter()
    with engine.connect() as conn:
        groups = pd.read_sql_query(sa.text(_RATES), conn, params=logged_params(config, as_of, as_of, as_of))
    summary: dict[str, Any] = {"as_of_date": as_of.isoformat(), "impressions": int(groups["n"].sum())}
    rows: list[dict[str, Any]] = []
    if groups.empty:
        summary["reason"] = f"no impressions were logged on {as_of}: the effect report is empty"
    else:
        rows = rate_rows(groups, as_of, config) + lift_rows(groups) + recs_rows(engine, groups, as_of, config)
        rows += ope_rows(engine, as_of, config)
    report = pd.DataFrame(rows, columns=COLUMNS).astype({"segment_id": "Int64", "n": "int64"})
    summary["rows"] = replace_partition(engine, TABLE, as_of, report)
    summary["lift"] = {
        r["placement"]: {k: r[k] for k in ("value", "low", "high")}
        for r in rows
        if r["kind"] == "lift" and r["metric"] == "ctr"
    }
    summary["seconds"] = round(time.perf_counter() - started, 1)
    log.info("effect report for %s: %s", as_of, summary)
    return summary

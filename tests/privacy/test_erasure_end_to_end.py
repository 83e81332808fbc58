"""Erasure on the real stack: every task of marketing_daily on a generated store with one more customer who
appears in every table (events, users, impressions, outcomes, profiles, segments, recommendations and a
data-quality sample with its Data Docs). After the erasure no table, partition or artifact holds their id
or one of their events' timestamps; the models that learned from them are stale; the next date retrains
them cold, exactly as a store that never had the customer would; a backfill does not bring them back.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tasks
from pipelines.privacy import steps
from pipelines.settings import Settings
from pipelines.warehouse.partitions import partition_name, shard_name
from tests.privacy.search import occurrences
from tests.test_lineage import D1, D2, PARAMS, _store, run_date

pytestmark = pytest.mark.integration

USER = 987_654_321_012  # a distinctive id: a search for its digits finds nothing by chance
PERSONAL_MODELS = ("user_profile_vae", "sasrec")
# The customer's absurd quantity and late event are data-quality warnings here, so the gate passes and quotes
# them: the quantity's row in dq_results, the late timestamp in the Data Docs.
RUN_PARAMS: dict[str, Any] = copy.deepcopy(PARAMS)
RUN_PARAMS["overrides"]["quality"] = {
    "severity": {"events.quantity.max": "warning", "events.event_ts.in_business_date": "warning"}
}


def add_customer(engine: Engine) -> list[dt.datetime]:
    """The customer, with views and purchases on five days up to D1 (one arriving a day late) and a shown and
    clicked banner; returns their events' timestamps (odd microseconds, found nowhere else)."""
    with engine.begin() as conn:
        items = conn.execute(sa.text("SELECT item_id, price FROM items ORDER BY item_id LIMIT 6")).all()
        conn.execute(
            sa.text(
                """INSERT INTO users (user_id, signup_date, age_group, region)
                   SELECT :u, :d, age_group, region FROM users ORDER BY user_id LIMIT 1"""
            ),
            {"u": USER, "d": D1 - dt.timedelta(days=10)},
        )
        events, stamps = [], []
        for n in range(5):
            day = D1 - dt.timedelta(days=4 - n)
            for k, kind in enumerate(("view", "purchase")):
                ts = dt.datetime.combine(day, dt.time(9, 10 + k, 7, 123457 + 2 * n + k), tzinfo=dt.UTC)
                item = items[(n + k) % len(items)]
                quantity = 20_000 if (n, k) == (4, 1) else 1
                events.append({"b": day, "e": 9_100_000_000 + 2 * n + k, "u": USER, "i": item.item_id,
                               "t": kind, "ts": ts, "p": item.price, "q": quantity})  # fmt: skip
                stamps.append(ts)
        late = dt.datetime.combine(D1 - dt.timedelta(days=1), dt.time(23, 59, 58, 123479), tzinfo=dt.UTC)
        events.append({"b": D1, "e": 9_100_000_010, "u": USER, "i": items[0].item_id, "t": "view", "ts": late,
                       "p": items[0].price, "q": 1})  # fmt: skip
        stamps.append(late)
        conn.execute(
            sa.text(
                """INSERT INTO events (batch_date, event_id, user_id, item_id, event_type, event_ts, price, quantity)
                   VALUES (:b, :e, :u, :i, :t, :ts, :p, :q)"""
            ),
            events,
        )
        shown = dt.datetime.combine(D1, dt.time(11, 0, 1, 345679), tzinfo=dt.UTC)
        conn.execute(
            sa.text(
                """INSERT INTO impressions (batch_date, impression_id, ts, user_id, placement, position, item_id,
                                           policy, policy_version, propensity, arm)
                   VALUES (:d, 77001, :ts, :u, 'recs_home', 1, :i, 'sasrec', 'v1', 1.0, 'personalised')"""
            ),
            {"d": D1, "ts": shown, "u": USER, "i": items[0].item_id},
        )
        clicked = shown + dt.timedelta(seconds=3)
        conn.execute(
            sa.text("INSERT INTO outcomes (batch_date, impression_id, click_ts) VALUES (:d, 77001, :ts)"),
            {"d": D1, "ts": clicked},
        )
    return [*stamps, shown, clicked]


@pytest.fixture
def store(pg_server_url: str, template_database: str, tmp_path: Path) -> Iterator[tuple[Engine, Settings]]:
    with contextlib.contextmanager(_store)(pg_server_url, template_database, tmp_path / "a") as store:
        yield store


@pytest.fixture
def store_without_customer(
    pg_server_url: str, template_database: str, tmp_path: Path
) -> Iterator[tuple[Engine, Settings]]:
    with contextlib.contextmanager(_store)(pg_server_url, template_database, tmp_path / "b") as store:
        yield store


def _one(engine: Engine, query: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).one()


def _candidates(engine: Engine, day: dt.date) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                """SELECT model_name, version, parent_version FROM model_runs
                   WHERE as_of_date = :d AND status <> 'superseded'"""
            ),
            {"d": day},
        ).all()
    return {r.model_name: (r.version, r.parent_version) for r in rows}


def test_an_erased_customer_is_nowhere_and_the_models_retrain_cold_without_them(
    store: tuple[Engine, Settings], store_without_customer: tuple[Engine, Settings]
) -> None:
    engine, settings = store
    stamps = add_customer(engine)
    run_date(store, D1, RUN_PARAMS)

    # The search finds the customer everywhere they are before the erasure.
    before = occurrences(engine, settings.artifacts, USER, stamps)
    where = {line.split(":")[0] for line in before}
    expected = {f"table {t}" for t in ("users", "events", "impressions", "outcomes")}
    expected.add(f"table {partition_name('dq_results', D1)}")
    # Per-user outputs are written in user shards: the rows live in the date partition's shard leaves.
    expected |= {f"table {shard_name(t, D1, 0, 1, staged=False)}" for t in ("user_profiles", "recommendations")}
    assert expected <= where, before
    assert any(line.startswith(f"file data_docs/{D1}/") for line in before), before
    segment, size = _one(
        engine,
        """SELECT p.segment_id, s.size FROM user_profiles p JOIN segments s USING (as_of_date, segment_id)
           WHERE p.user_id = :u AND p.as_of_date = :d""",
        u=USER,
        d=D1,
    )

    summary = steps.erase_users(engine, settings, {"user_ids": [USER]}, "test")

    assert occurrences(engine, settings.artifacts, USER, stamps) == []
    (done,) = summary["completed"]
    removed = done["removed"]
    assert (removed["users"], removed["events"], removed["impressions"], removed["outcomes"]) == (1, 11, 1, 1)
    assert removed["user_profiles"] >= 1 and removed["recommendations"] >= 1 and removed["dq_samples_rewritten"] >= 1
    assert removed["data_docs_removed"] == [D1.isoformat()]
    assert _one(engine, "SELECT size FROM segments WHERE as_of_date = :d AND segment_id = :s", d=D1, s=segment)[0] == (
        size - 1
    )
    # The models that learned from the customer are stale; the GAN learned item pictures only.
    with engine.connect() as conn:
        stale = dict(conn.execute(sa.text("SELECT model_name, stale_reason FROM served_lineage WHERE as_of_date = :d"),
                                  {"d": D1}).all())  # fmt: skip
    assert all(f"erasure request {done['request']}" in stale[m] for m in PERSONAL_MODELS)
    assert stale["creative_gan"] is None
    champions_d1 = _candidates(engine, D1)

    # The next date retrains the personal models cold: no parent, not warm-started from the stale weights.
    next_day = run_date(store, D2, RUN_PARAMS)
    assert occurrences(engine, settings.artifacts, USER, stamps) == []
    d2 = _candidates(engine, D2)
    for step, model in (("train_user_profile_vae", "user_profile_vae"), ("refresh_recommendations", "sasrec")):
        assert next_day[step]["cold_start"].startswith(f"{champions_d1[model][0]} was trained before erasure")
        assert d2[model][1] is None and next_day[step]["served_by"] == d2[model][0]
    assert "cold_start" not in next_day["generate_ad_creatives"]
    assert d2["creative_gan"][1] == champions_d1["creative_gan"][0]

    # A backfill of the earlier date does not bring the customer back.
    run_date(store, D1, RUN_PARAMS)
    assert occurrences(engine, settings.artifacts, USER, stamps) == []
    assert _one(engine, "SELECT count(*) FROM recommendations WHERE user_id = :u", u=USER)[0] == 0

    # Cold and without the customer: the same weights as a store that never had them, trained with no parent.
    for step in ("train_user_profile_vae", "refresh_recommendations"):
        tasks.STEPS[step](store_without_customer[0], D2, store_without_customer[1], RUN_PARAMS)
    fresh = _candidates(store_without_customer[0], D2)
    assert {m: d2[m][0] for m in PERSONAL_MODELS} == {m: fresh[m][0] for m in PERSONAL_MODELS}

"""The profile state in a real PostgreSQL: moved day by day, corrected for late and reloaded events, read for
other dates, it holds exactly the integers that summing each date's window gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import DataError
from pipelines.profiles import ProfileConfig, matrix, state
from pipelines.warehouse.copy_read import copy_arrays
from pipelines.warehouse.reads import events_as_of

from .store import add_events, events_frame, load_store

pytestmark = pytest.mark.integration

FIRST = dt.date(2026, 3, 1)
# A 10-day window with a 2-day half-life: eras of 16 days, so the month below crosses one (a rebuild).
CONFIG = ProfileConfig(history_days=10, recency_half_life_days=2.0)
SPEC = state.Spec.of(CONFIG)
USERS = np.arange(1, 61)


def _window(engine: Engine, day: dt.date) -> dict[str, np.ndarray]:
    """The state of `day` summed from its window alone, sorted by (user, item)."""
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        arrays = copy_arrays(
            cursor,
            state._window_sql(SPEC, day, True),
            [("user_id", "int8"), ("item_id", "int8"), ("q", "int8"), ("n", "int4"), ("last_ts", "timestamptz")],
        )
    order = np.lexsort((arrays["item_id"], arrays["user_id"]))
    return {k: v[order] for k, v in arrays.items()}


def _assert_exact(engine: Engine, got: state.PairState) -> None:
    want = _window(engine, got.as_of)
    order = np.lexsort((got.item_id, got.user_id))
    np.testing.assert_array_equal(got.user_id[order], want["user_id"])
    np.testing.assert_array_equal(got.item_id[order], want["item_id"])
    np.testing.assert_array_equal(got.weight[order], SPEC.decode(want["q"], got.as_of, SPEC.anchor(got.as_of)))
    if got.events is not None:
        np.testing.assert_array_equal(got.events[order], want["n"])
        np.testing.assert_array_equal(got.last_ts[order], want["last_ts"])


class _NoHeadroom(state.Spec):
    @property
    def scale_bits(self) -> int:
        return 62


def _meta(engine: Engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT as_of, anchor FROM profile_state_meta")).one())


@pytest.fixture
def store(engine: Engine) -> Engine:
    load_store(engine, len(USERS), events_frame(USERS, FIRST, 30, seed=3, events_per_user=40))
    return engine


def test_moved_day_by_day_the_state_is_the_window_summed_afresh(store: Engine) -> None:
    actions = []
    for offset in range(12, 30):
        day = FIRST + dt.timedelta(days=offset)
        actions.append(state.refresh(store, day, SPEC).split()[2])
        assert _meta(store) == (day, SPEC.anchor(day))
        _assert_exact(store, state.pairs_as_of(store, day, SPEC))
    # The first date builds; each later one moves, except the first date of a new era, which rebuilds.
    eras = {SPEC.anchor(FIRST + dt.timedelta(days=o)) for o in range(12, 30)}
    assert actions[0] == "rebuilt" and actions.count("rebuilt") == len(eras) and actions.count("moved") > 10


def test_the_weights_are_the_event_weights_of_the_definition(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=20)
    state.refresh(store, day, SPEC)
    got = state.pairs_as_of(store, day, SPEC)
    want = matrix.event_weights(events_as_of(store, day), day, CONFIG)
    got_order, want_order = np.lexsort((got.item_id, got.user_id)), np.lexsort((want.item_id, want.user_id))
    np.testing.assert_array_equal(got.user_id[got_order], want.user_id[want_order])
    np.testing.assert_allclose(got.weight[got_order], want.weight[want_order], rtol=1e-8)
    np.testing.assert_array_equal(got.events[got_order], want.events[want_order])
    np.testing.assert_array_equal(got.last_ts[got_order], want.last_ts[want_order])


def test_late_reloaded_and_erased_events_are_applied_exactly(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=20)
    state.refresh(store, day, SPEC)
    # Late events for three days ago, arriving with today's batch.
    late = events_frame(USERS[:20], day - dt.timedelta(days=3), 1, seed=9, first_event_id=10**6)
    add_events(store, late.assign(batch_date=day))
    # A reloaded batch: yesterday's events replaced by others.
    with store.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE batch_date = :d"), {"d": day - dt.timedelta(days=1)})
    add_events(store, events_frame(USERS, day - dt.timedelta(days=1), 1, seed=11, first_event_id=2 * 10**6))
    # One user's events deleted, latest first among them.
    with store.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM events WHERE user_id = 7 AND event_ts >= :t"), {"t": FIRST + dt.timedelta(days=15)}
        )
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM profile_state_changes")).scalar_one() > 0

    _assert_exact(store, state.pairs_as_of(store, day, SPEC))  # the log applied in the read
    assert state.refresh(store, day, SPEC).split()[2] == "changes"
    _assert_exact(store, state.pairs_as_of(store, day, SPEC))
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM profile_state_changes")).scalar_one() == 0


def test_other_dates_read_exactly_without_moving_the_stored_state(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=28)
    state.refresh(store, day, SPEC)
    for other in (day - dt.timedelta(days=1), day - dt.timedelta(days=2), day - dt.timedelta(days=9)):
        _assert_exact(store, state.pairs_as_of(store, other, SPEC))  # moved back in the query, or summed
        without = state.pairs_as_of(store, other, SPEC, activity=False)
        assert without.events is None and len(without) == len(state.pairs_as_of(store, other, SPEC))
    assert state.refresh(store, day - dt.timedelta(days=5), SPEC).endswith(f"current as of {day}")
    assert _meta(store)[0] == day


def test_truncating_events_drops_the_state_and_another_spec_rebuilds(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=20)
    state.refresh(store, day, SPEC)
    other = state.Spec.of(ProfileConfig(history_days=10, recency_half_life_days=2.0, weight_view=0.5))
    assert state.refresh(store, day, other).split()[2] == "rebuilt"
    with store.begin() as conn:
        conn.execute(sa.text("TRUNCATE events"))
    assert _meta(store)[0] is None
    assert len(state.pairs_as_of(store, day, SPEC)) == 0


def test_a_binary_read_refuses_nulls(engine: Engine) -> None:
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        with pytest.raises(ValueError, match="NULL"):
            copy_arrays(cursor, "SELECT NULL::bigint AS x", [("x", "int8")])
        got = copy_arrays(cursor, "SELECT g::bigint AS x FROM generate_series(1, 100000) AS g", [("x", "int8")])
    assert got["x"].dtype == np.int64 and got["x"].sum() == 100000 * 100001 // 2
    assert pd.Series(got["x"]).is_monotonic_increasing


def test_without_the_change_trigger_every_read_sums_the_window(store: Engine) -> None:
    # A team whose events is a view has no trigger: no state is kept, and reads stay exact.
    with store.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER events_profile_state_delete ON events"))
    day = FIRST + dt.timedelta(days=20)
    assert "not kept" in state.refresh(store, day, SPEC)
    assert _meta(store)[0] is None
    _assert_exact(store, state.pairs_as_of(store, day, SPEC))


def test_a_state_maintained_before_a_server_restart_is_rebuilt(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=20)
    state.refresh(store, day, SPEC)
    with store.begin() as conn:  # as after a crash, which empties the unlogged state
        conn.execute(sa.text("UPDATE profile_state_meta SET server_started = server_started - interval '1 hour'"))
        conn.execute(sa.text("TRUNCATE profile_state"))
    _assert_exact(store, state.pairs_as_of(store, day, SPEC))  # summed: the stored state is not trusted
    assert state.refresh(store, day, SPEC).split()[2] == "rebuilt"
    _assert_exact(store, state.pairs_as_of(store, day, SPEC))


def test_an_overflowing_pair_names_the_problem_and_keeps_the_stored_state(store: Engine) -> None:
    day = FIRST + dt.timedelta(days=20)
    state.refresh(store, day, SPEC)
    before = state.pairs_as_of(store, day, SPEC)
    # A scale that leaves no headroom stands for more events in one pair than a bigint sum can hold.
    with pytest.raises(DataError, match="overflow the profile state"):
        state.refresh(store, day + dt.timedelta(days=1), _NoHeadroom(SPEC.weights, 2.0, 10))
    assert _meta(store) == (day, SPEC.anchor(day))
    assert len(state.pairs_as_of(store, day, SPEC)) == len(before)

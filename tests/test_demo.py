"""The demo profile's overrides must stay valid for the stage configs they target."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config import apply_overrides
from pipelines.dates import parse_date, resolve_business_date
from pipelines.demo import DEMO_DATE, DEMO_DATES, DEMO_RUN, DEMO_STORE, PROFILE_OVERRIDES, demo_run
from pipelines.sources import StoreConfig
from pipelines.tasks import STAGES, stage_defaults

DEFAULTS = stage_defaults()


@pytest.mark.parametrize("profile", sorted(PROFILE_OVERRIDES))
def test_profile_overrides_name_known_stages_and_settings(profile: str) -> None:
    overrides = PROFILE_OVERRIDES[profile]
    assert set(overrides) <= set(STAGES) == set(DEFAULTS)
    for stage, values in overrides.items():
        apply_overrides(DEFAULTS[stage], values)  # raises ConfigError on an unknown or mistyped key


def test_demo_store_is_a_valid_store() -> None:
    assert StoreConfig(**DEMO_STORE).users == DEMO_STORE["users"]


@pytest.mark.parametrize("day", DEMO_DATES)
def test_demo_runs_have_the_business_date_as_their_logical_date(day: dt.date) -> None:
    """The grid shows a run by its logical date: the demo's must be the day it processes, not today."""
    run = demo_run(day, train=day == DEMO_DATES[0])
    logical = dt.datetime.fromisoformat(run["logical_date"]).replace(tzinfo=dt.UTC)
    assert parse_date(logical) == day
    assert resolve_business_date("manual", logical, run["conf"]) == day


def test_the_demo_loop_trains_once_then_serves_consecutive_days_of_the_store() -> None:
    """Only the first date trains (the loop must stay cheap); the loop's dates follow each other up to the
    store's last date, so each is served from the plan of the day before."""
    assert demo_run(DEMO_DATES[0], train=True) == DEMO_RUN and "serve_with_current_champion" not in DEMO_RUN["conf"]
    assert all(demo_run(day, train=False)["conf"]["serve_with_current_champion"] for day in DEMO_DATES[1:])
    assert len(DEMO_DATES) >= 2 and DEMO_DATES[-1] == DEMO_DATE == DEMO_STORE["end_date"]
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(DEMO_DATES, DEMO_DATES[1:], strict=False))


def test_simulate_defaults_to_the_demo_store() -> None:
    """`python -m pipelines simulate --date D` after `make demo` must rebuild the demo store's world: another
    world would serve users and tastes that are not the store's."""
    from pipelines.cli import _store_config, build_parser

    args = build_parser().parse_args(["simulate", "--date", "2026-06-29"])
    assert _store_config(args) == StoreConfig(**DEMO_STORE)

"""The demo profile's overrides must stay valid for the stage configs they target."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config import apply_overrides
from pipelines.creatives import CreativesConfig
from pipelines.dates import parse_date, resolve_business_date
from pipelines.demo import DEMO_DATE, DEMO_RUN, DEMO_STORE, PROFILE_OVERRIDES
from pipelines.profiles import ProfileConfig
from pipelines.quality import GateConfig
from pipelines.recs import RecsConfig
from pipelines.sources import StoreConfig
from pipelines.tasks import STAGES

DEFAULTS = {"quality": GateConfig(), "profiles": ProfileConfig(), "recs": RecsConfig(), "creatives": CreativesConfig()}


@pytest.mark.parametrize("profile", sorted(PROFILE_OVERRIDES))
def test_profile_overrides_name_known_stages_and_settings(profile: str) -> None:
    overrides = PROFILE_OVERRIDES[profile]
    assert set(overrides) <= set(STAGES) == set(DEFAULTS)
    for stage, values in overrides.items():
        apply_overrides(DEFAULTS[stage], values)  # raises ConfigError on an unknown or mistyped key


def test_demo_store_is_a_valid_store() -> None:
    assert StoreConfig(**DEMO_STORE).users == DEMO_STORE["users"]


def test_demo_run_has_the_business_date_as_its_logical_date() -> None:
    """The grid shows a run by its logical date: the demo's must be the day it processes, not today."""
    logical = dt.datetime.fromisoformat(DEMO_RUN["logical_date"]).replace(tzinfo=dt.UTC)
    assert parse_date(logical) == DEMO_DATE
    assert resolve_business_date("manual", logical, DEMO_RUN["conf"]) == DEMO_DATE

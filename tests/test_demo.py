"""The demo profile's overrides must stay valid for the stage configs they target."""

from __future__ import annotations

import pytest

from pipelines.config import apply_overrides
from pipelines.creatives import CreativesConfig
from pipelines.demo import DEMO_STORE, PROFILE_OVERRIDES
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

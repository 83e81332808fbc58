"""GateConfig and the check catalogue: no database, no Great Expectations."""

from __future__ import annotations

import pytest

from pipelines.config import apply_overrides
from pipelines.errors import ConfigError
from pipelines.quality import CHECKS, GateConfig
from pipelines.quality.suite import BUILDERS, batch_query
from pipelines.quality.volume import VolumeBaseline


def test_every_catalogued_check_has_exactly_one_builder() -> None:
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names))
    assert set(BUILDERS) == set(names)


def test_defaults_block_on_everything_but_volume_and_late_outcomes() -> None:
    config = GateConfig()
    warnings = {c.name for c in CHECKS if config.severity_of(c.name) == "warning"}
    assert warnings == {"events.volume.trailing_mean", "outcomes.attribution_window"}


def test_the_gate_knows_the_arms_the_delivery_loop_assigns() -> None:
    from pipelines.delivery.arms import ARMS

    assert set(GateConfig().arms) == set(ARMS)


def test_params_override_tolerances_and_severity() -> None:
    config = apply_overrides(
        GateConfig(), {"volume_tolerance": 0.2, "severity": {"events.price.category_range": "warning"}}
    )
    assert config.volume_tolerance == 0.2
    assert config.severity_of("events.price.category_range") == "warning"
    assert config.severity_of("events.price.non_negative") == "critical"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"severity": {"events.price.typo": "warning"}}, "unknown check"),
        ({"severity": {"events.price.non_negative": "fatal"}}, "must be one of"),
        ({"volume_tolerance": 0}, "volume_tolerance"),
        ({"price_factor": 0.5}, "price_factor"),
        ({"sample_rows": 0}, "sample_rows"),
        ({"quantity_min": 5, "quantity_max": 4}, r"quantity_min \(5\) must not exceed quantity_max \(4\)"),
        ({"quantity_max": "lots"}, "quantity_max must be an integer"),
        ({"volume_tolerence": 0.3}, "unknown GateConfig setting"),
        ({"arms": []}, "arms must be a non-empty list"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(overrides: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        apply_overrides(GateConfig(), overrides)


def test_volume_bounds_follow_the_trailing_mean() -> None:
    assert VolumeBaseline(window_days=7, days=7, mean=10.0).bounds(0.5) == (5, 15)
    assert VolumeBaseline(window_days=7, days=3, mean=10.0).bounds(2.0) == (0, 30)
    assert VolumeBaseline(window_days=7, days=0, mean=None).bounds(0.5) is None


def test_batch_query_takes_only_a_date() -> None:
    import datetime as dt

    assert batch_query(dt.date(2024, 3, 1)).endswith("batch_date = DATE '2024-03-01'")
    assert batch_query(dt.date(2024, 3, 1), "outcomes").startswith("SELECT * FROM outcomes WHERE")
    with pytest.raises(ValueError, match="not 'users'"):
        batch_query(dt.date(2024, 3, 1), "users")
    with pytest.raises(TypeError):
        batch_query("2024-03-01'; DROP TABLE events; --")  # type: ignore[arg-type]

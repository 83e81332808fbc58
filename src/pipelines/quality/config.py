"""The gate's settings: one frozen dataclass, filled from run params through `pipelines.config`."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.errors import ConfigError
from pipelines.quality.checks import CHECKS_BY_NAME, SEVERITIES, Severity

# Great Expectations fetches at most this many unexpected rows per expectation (constants.MAX_RESULT_RECORDS).
MAX_SAMPLE_ROWS = 200


@dataclass(frozen=True)
class GateConfig:
    """Tolerances of the data-quality gate.

    volume_tolerance: the day's event count may differ from the trailing mean by this fraction.
    volume_window_days: how many days before the business date make the trailing mean.
    price_factor: an event's price must lie in [category min / f, category max * f] of the items catalogue,
        wide enough for discounts and bundles, narrow enough to catch cents-for-units and typo prices.
    quantity_min, quantity_max: an event's quantity must lie in [quantity_min, quantity_max]. Every source
        delivers at least one unit per event, and the largest line of the real Ta-Feng data is 1,200 units:
        10,000 leaves room for bulk orders and still catches typos such as 1,000,000. Each bound is its own
        check (`events.quantity.min`, `events.quantity.max`), so `severity` can make either a warning.
    arms: the experiment arms an impression may name (pipelines.delivery.arms.ARMS for the simulated store).
    sample_rows: bad rows kept per failed expectation (dq_results, the error message shows a few).
    severity: per-check overrides, e.g. {"events.volume.trailing_mean": "critical"}.
    """

    volume_tolerance: float = 0.5
    volume_window_days: int = 7
    price_factor: float = 10.0
    quantity_min: int = 1
    quantity_max: int = 10_000
    arms: tuple[str, ...] = ("personalised", "holdout")
    sample_rows: int = 5
    severity: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.volume_tolerance > 0:
            raise ConfigError(f"GateConfig.volume_tolerance must be > 0, got {self.volume_tolerance}")
        if self.volume_window_days < 1:
            raise ConfigError(f"GateConfig.volume_window_days must be >= 1, got {self.volume_window_days}")
        if not self.price_factor >= 1:
            raise ConfigError(f"GateConfig.price_factor must be >= 1, got {self.price_factor}")
        if self.quantity_min > self.quantity_max:
            raise ConfigError(
                f"GateConfig.quantity_min ({self.quantity_min}) must not exceed quantity_max ({self.quantity_max})"
            )
        if not self.arms or not all(isinstance(arm, str) and arm for arm in self.arms):
            raise ConfigError(f"GateConfig.arms must be a non-empty list of arm names, got {self.arms!r}")
        if not 1 <= self.sample_rows <= MAX_SAMPLE_ROWS:
            raise ConfigError(f"GateConfig.sample_rows must be in 1..{MAX_SAMPLE_ROWS}, got {self.sample_rows}")
        unknown = sorted(set(self.severity) - set(CHECKS_BY_NAME))
        if unknown:
            raise ConfigError(
                f"GateConfig.severity names unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS_BY_NAME)}"
            )
        for name, level in self.severity.items():
            if level not in SEVERITIES:
                raise ConfigError(f"GateConfig.severity[{name!r}] must be one of {SEVERITIES}, got {level!r}")

    def severity_of(self, name: str) -> Severity:
        """The configured severity of a check, else its default."""
        return self.severity.get(name, CHECKS_BY_NAME[name].severity)  # type: ignore[return-value]

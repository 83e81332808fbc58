"""Demo sizing in one place: the sample store and the model settings that `make demo` runs with.

`make demo` must finish in under 10 minutes on 2 cores after the install, with every stage doing real
work. The `demo` profile (PIPELINES_PROFILE=demo, set by `make demo` and `make airflow`) applies
these overrides on top of each stage's production defaults; a run's `overrides` param still wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# The business date the demo store ends on and the demo run processes. Fixed, so the demo's output is
# the same whenever it runs (nothing reads the wall clock).
DEMO_DATE = dt.date(2026, 6, 30)

# StoreConfig fields for the sample store.
DEMO_STORE: dict[str, Any] = {"users": 5_000, "items": 1_000, "days": 60, "end_date": DEMO_DATE, "seed": 7}

PROFILE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "production": {},
    "demo": {},
}

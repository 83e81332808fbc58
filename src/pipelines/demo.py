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

# The demo's one DAG run (`airflow dags test` arguments). The business date is its logical date too, so the
# Airflow grid shows the day the run processed rather than the day the demo ran.
DEMO_RUN: dict[str, Any] = {
    "dag_id": "marketing_daily",
    "conf": {"business_date": DEMO_DATE.isoformat()},
    "logical_date": DEMO_DATE.isoformat(),
}

# StoreConfig fields for the sample store.
DEMO_STORE: dict[str, Any] = {"users": 5_000, "items": 1_000, "days": 60, "end_date": DEMO_DATE, "seed": 7}

# Stage -> config overrides. Sized so the demo store's run takes a few minutes on 2 cores while every model
# still trains, evaluates against its baselines and writes its outputs.
PROFILE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "production": {},
    "demo": {
        "profiles": {"epochs": 10, "batch_size": 128, "hidden_dim": 300, "latent_dim": 64},
        "recs": {"max_epochs": 15, "patience": 3, "refit": False},
        # 400 GAN steps a day: the fewest with which the first, cold-started run passes the gates
        # (docs/model-notes.md), so the demo already has creatives.
        "creatives": {
            "train_steps": 400,
            "batch_size": 32,
            "classifier_epochs": 10,
            "eval_samples": 1000,
            "candidates_per_category": 16,
        },
    },
}

"""Demo sizing in one place: the sample store and the model settings that `make demo` runs with.

`make demo` must finish in under 10 minutes on 2 cores after the install, with every stage doing real
work. The `demo` profile (PIPELINES_PROFILE=demo, set by `make demo` and `make airflow`) applies
these overrides on top of each stage's production defaults; a run's `overrides` param still wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# The business date the demo store ends on and the demo's last run processes. Fixed, so the demo's output
# is the same whenever it runs (nothing reads the wall clock).
DEMO_DATE = dt.date(2026, 6, 30)

# A few days of the closed loop: the first date trains every model; on each later date the simulated store
# first serves the plan of the date before (impressions, outcomes), then the date runs with the champions
# trained on the first date (no training), so each loop day costs an inference run, not a training run.
DEMO_LOOP_DAYS = 2
DEMO_DATES: tuple[dt.date, ...] = tuple(
    DEMO_DATE - dt.timedelta(days=DEMO_LOOP_DAYS - k) for k in range(DEMO_LOOP_DAYS + 1)
)


def demo_run(day: dt.date, *, train: bool) -> dict[str, Any]:
    """`airflow dags test` arguments of the demo's run for `day`. The business date is its logical date too,
    so the Airflow grid shows the day the run processed rather than the day the demo ran."""
    conf: dict[str, Any] = {"business_date": day.isoformat()}
    if not train:
        conf["serve_with_current_champion"] = True
    return {"dag_id": "marketing_daily", "conf": conf, "logical_date": day.isoformat()}


# The run that trains the models.
DEMO_RUN = demo_run(DEMO_DATES[0], train=True)

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

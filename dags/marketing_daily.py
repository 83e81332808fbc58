"""
### marketing_daily

Keeps personalised marketing fresh for one **business date** (a UTC day):

1. `check_data_quality`: Great Expectations checks the day's events in PostgreSQL; a critical failure
   stops the run here, so nothing is trained or written and yesterday's outputs stay.
2. `train_user_profile_vae`: retrains the Mult-VAE user profiles; writes embeddings, stable segments
   and interests (`user_profiles`, `segments`).
3. `refresh_recommendations`: retrains the SASRec-style Transformer; writes every active user's
   top-K (`recommendations`).
4. `generate_ad_creatives`: the conditional GAN's creatives for each live campaign and target
   segment, quality-gated and composed into banners (`ad_creatives`, status `pending_review`).
5. `plan_delivery`: tomorrow's traffic shares over the approved creatives per segment and placement
   (Thompson sampling on the clicks logged so far, a floor per creative, a holdout arm) -> `delivery_plan`.
6. `evaluate_effects`: the day's impressions and outcomes -> rates with 95% intervals per creative,
   segment and arm, lift over the holdout, recommendation hit rates and off-policy estimates of the new
   plan (`effect_reports`); a day without impressions gets an empty report.
7. `publish_report`: rows written per output partition, the data-quality verdict and the models.

**Models, point in time.** The champion of a date D is the latest promoted model trained on or before
D. A model task for D compares its candidate with (and warm-starts from) the champion of D-1, promotes
it only if it is not worse (or *Force model promotion* is set), and writes D's outputs with the champion
of D, the promotion committed together with them. A backfill that promotes at an earlier date marks the
later dates whose lineage it changed as stale (Marketing pages, run report): rerun them to refresh.
Model tasks have `depends_on_past`, so dates of one model run in date order, also in a backfill.
*Recompute with today's champion* serves a past date with today's champion instead (no training).

**Which date?** Scheduled and backfill runs process their data interval's start. Manual runs process
the *Business date* picked in the trigger form; without one they fall back to the run's data interval,
and a run with neither is refused. Outputs are partitions of that date, replaced atomically, so a
rerun or a backfill of a date gives the same rows.

Model tasks run in the pool `gpu` (queue `gpu` on Celery). Logic lives in `pipelines`; this file is
schedule, params and wiring only.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

GPU_POOL = "gpu"
GPU_QUEUE = "gpu"
# pipelines.tasks.STAGES, spelled out because this file imports only airflow.sdk (a test keeps them equal).
STAGES = ("quality", "profiles", "recs", "creatives", "delivery")


def _run(step: str) -> dict:
    from pipelines.airflow_adapter import run_step

    return run_step(step)


@dag(
    dag_id="marketing_daily",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    tags=["marketing", "ml"],
    params={
        "business_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Business date",
            description=(
                "The UTC day a manual run processes. Scheduled and backfill runs ignore it and use "
                "their data interval's start."
            ),
        ),
        "force_promote": Param(
            False,
            type="boolean",
            title="Force model promotion",
            description=(
                "Make this run's models champions even if they score below the current champions. "
                "Hard quality gates still apply."
            ),
        ),
        "serve_with_current_champion": Param(
            False,
            type="boolean",
            title="Recompute with today's champion",
            description=(
                "Write this date's outputs with today's champion instead of the champion of the date, and train "
                "nothing. Off: a past date is recomputed exactly as it was (point in time)."
            ),
        ),
        "overrides": Param(
            {},
            type="object",
            # The form refuses an unknown stage; each stage's keys and value types are checked by the
            # first task against its config dataclass, before anything is written.
            properties={stage: {"type": "object"} for stage in STAGES},
            additionalProperties=False,
            title="Config overrides",
            description=(
                f"Per-stage settings (stages: {', '.join(STAGES)}), e.g. "
                '{"recs": {"max_epochs": 20}, "quality": {"volume_tolerance": 0.3}}. '
                "Unknown stages, keys or mistyped values fail the run in its first task, before anything is written."
            ),
        ),
    },
)
def marketing_daily() -> None:
    @task
    def check_data_quality() -> dict:
        return _run("check_data_quality")

    @task(pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True)
    def train_user_profile_vae() -> dict:
        return _run("train_user_profile_vae")

    @task(pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True)
    def refresh_recommendations() -> dict:
        return _run("refresh_recommendations")

    @task(pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True)
    def generate_ad_creatives() -> dict:
        return _run("generate_ad_creatives")

    @task
    def plan_delivery() -> dict:
        return _run("plan_delivery")

    @task
    def evaluate_effects() -> dict:
        return _run("evaluate_effects")

    @task
    def publish_report() -> dict:
        return _run("publish_report")

    # Recommendations fall back to segment popularity and creatives target segments: both follow the VAE.
    # The plan draws over the date's creatives; the effects compare it with yesterday's plan.
    profiles = check_data_quality() >> train_user_profile_vae()
    recs, creatives = refresh_recommendations(), generate_ad_creatives()
    effects = evaluate_effects()
    profiles >> [recs, creatives]
    creatives >> plan_delivery() >> effects
    [recs, effects] >> publish_report()


marketing_daily()

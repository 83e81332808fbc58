"""
### marketing_daily

Keeps personalised marketing fresh for one **business date** (a UTC day):

1. `check_data_quality`: Great Expectations checks the day's events in PostgreSQL; a critical failure
   stops the run here, so nothing is trained or written and yesterday's outputs stay.
2. `train_user_profile_vae`: retrains the Mult-VAE user profiles; `score_user_profiles` writes
   embeddings and interests in user shards, `publish_user_profiles` makes them the date's
   `user_profiles` with stable segments (`segments`).
3. `refresh_recommendations`: retrains the SASRec-style Transformer; `score_recommendations` writes
   every active user's top-K in user shards, `publish_recommendations` makes them the date's
   `recommendations`.
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

**Shards.** Each `score_*` task is mapped over the user shards its training task returns
(`PIPELINES_SCORE_SHARDS`, default 1), users by PostgreSQL's hash of user id. Every shard stages its rows
out of readers' sight and is retried alone; the publish task attaches all of them as the date's partition
in one transaction with the model decision, so readers see yesterday's partition until every shard is in.

Model tasks (training, shards, publishing) run in the pool `gpu` (queue `gpu` on Celery). Logic lives in
`pipelines`; this file is schedule, params and wiring only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

GPU_POOL = "gpu"
GPU_QUEUE = "gpu"
SHARD_RETRY_DELAY = dt.timedelta(seconds=30)
# pipelines.tasks.STAGES, spelled out because this file imports only airflow.sdk (a test keeps them equal).
STAGES = ("quality", "profiles", "recs", "creatives", "delivery")


def _run(step: str, **arguments: object) -> Any:
    from pipelines.airflow_adapter import run_step

    return run_step(step, **arguments)


def _sharded_model_task(stage: str, train_id: str, output: str) -> tuple:
    """Train once, score and stage each user shard as a mapped task instance (a lost worker costs one shard,
    retried after SHARD_RETRY_DELAY), then publish them all at once. Returns (training, publishing)."""

    @task(task_id=train_id, pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True)
    def train() -> list:
        return _run("train_model", stage=stage)

    @task(
        task_id=f"score_{output}", pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True, retry_delay=SHARD_RETRY_DELAY
    )
    def score(work: dict) -> dict:
        return _run("score_model_shard", stage=stage, work=work)

    @task(task_id=f"publish_{output}", pool=GPU_POOL, queue=GPU_QUEUE, depends_on_past=True)
    def publish(work: list, shards: list) -> dict:
        return _run("publish_model", stage=stage, work=list(work), shards=list(shards))

    work = train()
    return work, publish(work, score.expand(work=work))


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
    profile_work, profiles = _sharded_model_task("profiles", "train_user_profile_vae", "user_profiles")
    check_data_quality() >> profile_work
    recs_work, recs = _sharded_model_task("recs", "refresh_recommendations", "recommendations")
    creatives = generate_ad_creatives()
    profiles >> [recs_work, creatives]
    # The plan draws over the date's creatives; the effects compare it with yesterday's plan.
    effects = evaluate_effects()
    creatives >> plan_delivery() >> effects
    [recs, effects] >> publish_report()


marketing_daily()

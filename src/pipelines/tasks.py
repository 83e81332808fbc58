"""One plain function per DAG task: (engine, business date, settings, run params) -> small summary.

Each imports its model package inside the function, so importing this module stays cheap, and each can
be called from tests or the CLI without Airflow. Config overrides come from the run's `overrides` param,
keyed by stage; an unknown stage or key is an error, raised by the first task for every stage at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from pipelines.config import apply_overrides
from pipelines.errors import ConfigError
from pipelines.settings import Settings

log = logging.getLogger(__name__)

C = TypeVar("C")
STAGES = ("quality", "profiles", "recs", "creatives", "delivery")


def stage_overrides(params: Mapping[str, Any], stage: str) -> Mapping[str, Any]:
    """The overrides for one stage from the run's params, after checking every stage name."""
    overrides = params.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"the 'overrides' param must be an object keyed by stage, got {overrides!r}")
    unknown = sorted(set(overrides) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown stage(s) in overrides: {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    chosen = overrides.get(stage) or {}
    if not isinstance(chosen, Mapping):
        raise ConfigError(f"overrides for stage {stage!r} must be an object of settings, got {chosen!r}")
    return chosen


def stage_config(default: C, stage: str, settings: Settings, params: Mapping[str, Any]) -> C:
    """defaults -> the settings profile's overrides (pipelines.demo) -> the run's overrides."""
    from pipelines.demo import PROFILE_OVERRIDES

    profiled = apply_overrides(default, PROFILE_OVERRIDES[settings.profile].get(stage))
    overrides = stage_overrides(params, stage)
    try:
        return apply_overrides(profiled, overrides)
    except ConfigError as exc:
        raise ConfigError(f"bad config overrides for stage {stage!r}: {exc}") from exc


def stage_defaults() -> dict[str, Any]:
    """Each stage's production config. The config modules are stdlib-only, so this imports no model code."""
    from pipelines.creatives.config import CreativesConfig
    from pipelines.delivery.config import DeliveryConfig
    from pipelines.profiles.config import ProfileConfig
    from pipelines.quality.config import GateConfig
    from pipelines.recs.config import RecsConfig

    return {
        "quality": GateConfig(),
        "profiles": ProfileConfig(),
        "recs": RecsConfig(),
        "creatives": CreativesConfig(),
        "delivery": DeliveryConfig(),
    }


def validate_run_params(settings: Settings, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every stage's config (names, types and ranges, exactly as its task will build it) and the run flags.

    The first task calls this before it writes anything, so a bad value in any stage's overrides fails
    the run while nothing has changed, instead of after the earlier model tasks wrote their outputs.
    """
    _force(params)
    _policy(params)
    return {stage: stage_config(default, stage, settings, params) for stage, default in stage_defaults().items()}


def check_data_quality(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    from pipelines.quality import run_quality_gate

    configs = validate_run_params(settings, params)
    # Late outcomes are held to the attribution window the effects count in: the delivery stage's.
    return run_quality_gate(engine, as_of, settings.artifacts, configs["quality"], configs["delivery"]).summary()


def _force(params: Mapping[str, Any]) -> bool:
    value = params.get("force_promote", False)
    if not isinstance(value, bool):
        raise ConfigError(f"the 'force_promote' param must be true or false, got {value!r}")
    return value


def _policy(params: Mapping[str, Any]) -> str:
    """Whose outputs a date gets: the champion of that date (the lineage rule) or, when the run asks for it
    with `serve_with_current_champion`, today's champion (no training)."""
    value = params.get("serve_with_current_champion", False)
    if not isinstance(value, bool):
        raise ConfigError(f"the 'serve_with_current_champion' param must be true or false, got {value!r}")
    return "current_champion" if value else "champion_of_date"


def _device(recipe: Any, settings: Settings) -> Any:
    from pipelines.compute import select_device

    setting = getattr(recipe, "device_setting", "settings")
    return select_device(settings.device if setting == "settings" else setting)


def _model_task(recipe: Any, engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    """Every model task: its recipe through the one lifecycle (pipelines.modeltask)."""
    from pipelines import modeltask

    device = _device(recipe, settings)
    return modeltask.run(
        recipe, engine, as_of, settings, device=device, force_promote=_force(params), policy=_policy(params)
    )


def _sharded_recipe(stage: str, settings: Settings, params: Mapping[str, Any]) -> Any:
    """The recipe of a per-user model task with the run's config; its whole task and its DAG phases use it."""
    if stage == "profiles":
        from pipelines.profiles import ProfileConfig
        from pipelines.profiles.task import ProfileRecipe

        return ProfileRecipe(stage_config(ProfileConfig(), stage, settings, params))
    if stage == "recs":
        from pipelines.recs import RecsConfig
        from pipelines.recs.task import RecsRecipe

        return RecsRecipe(stage_config(RecsConfig(), stage, settings, params))
    raise ConfigError(f"stage {stage!r} has no sharded model task; profiles or recs")


def train_model(
    engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any], *, stage: str
) -> list[dict]:
    """A DAG's training task of a sharded model task: one work item per shard (each carries the plan)."""
    from pipelines import modeltask

    recipe = _sharded_recipe(stage, settings, params)
    plan = modeltask.train(
        recipe,
        engine,
        as_of,
        settings,
        device=_device(recipe, settings),
        force_promote=_force(params),
        policy=_policy(params),
    )
    return [{"shard": i, "plan": plan.to_dict()} for i in range(plan.shards)]


def score_model_shard(
    engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any], *, stage: str, work: Mapping
) -> dict:
    """A DAG's mapped task: score and stage one shard of the trained plan."""
    from pipelines import modeltask

    recipe = _sharded_recipe(stage, settings, params)
    plan = _plan(work, as_of)
    return modeltask.score_shard(recipe, engine, settings, plan, work["shard"], device=_device(recipe, settings))


def publish_model(
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    params: Mapping[str, Any],
    *,
    stage: str,
    work: list[Mapping],
    shards: list[dict],
) -> dict:
    """A DAG's publish task: every staged shard becomes the date's outputs, with the lineage, at once."""
    from pipelines import modeltask

    recipe = _sharded_recipe(stage, settings, params)
    plan = _plan(work[0], as_of)
    return modeltask.publish(recipe, engine, settings, plan, list(shards), device=_device(recipe, settings))


def _plan(work: Mapping, as_of: dt.date) -> Any:
    from pipelines.modeltask import Plan

    plan = Plan.from_dict(work["plan"])
    if plan.as_of_date != as_of.isoformat():
        raise ConfigError(f"a plan for {plan.as_of_date} handed to the run for {as_of}")
    return plan


def train_user_profile_vae(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    return _model_task(_sharded_recipe("profiles", settings, params), engine, as_of, settings, params)


def refresh_recommendations(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    return _model_task(_sharded_recipe("recs", settings, params), engine, as_of, settings, params)


def generate_ad_creatives(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    from pipelines.creatives import CreativesConfig
    from pipelines.creatives.task import CreativesRecipe

    config = stage_config(CreativesConfig(), "creatives", settings, params)
    return _model_task(CreativesRecipe(config), engine, as_of, settings, params)


def plan_delivery(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    from pipelines.creatives.review import auto_approve_creatives
    from pipelines.delivery.config import DeliveryConfig
    from pipelines.delivery.task import plan_delivery as plan

    config = stage_config(DeliveryConfig(), "delivery", settings, params)
    # The simulated store has no reviewer: with the setting on (demo profile only) its creatives are
    # approved here, so the plan has something to serve; elsewhere this changes nothing.
    auto_approve_creatives(engine, as_of, settings)
    return plan(engine, as_of, config)


def evaluate_effects(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    from pipelines.delivery.config import DeliveryConfig
    from pipelines.effects.task import evaluate_effects as evaluate

    return evaluate(engine, as_of, stage_config(DeliveryConfig(), "delivery", settings, params))


def publish_report(engine: Engine, as_of: dt.date, settings: Settings, params: Mapping[str, Any]) -> dict:
    from pipelines.report import build_report, format_report, write_report

    report = build_report(engine, as_of)
    path = write_report(report, settings.artifacts)
    log.info("run report for %s (%s):\n%s", as_of, path, format_report(report))
    return {"report": str(path), **report}


STEPS: dict[str, Callable[[Engine, dt.date, Settings, Mapping[str, Any]], dict]] = {
    "check_data_quality": check_data_quality,
    "train_user_profile_vae": train_user_profile_vae,
    "refresh_recommendations": refresh_recommendations,
    "generate_ad_creatives": generate_ad_creatives,
    "plan_delivery": plan_delivery,
    "evaluate_effects": evaluate_effects,
    "publish_report": publish_report,
}
# The phases a DAG runs the sharded model tasks in (train, then one mapped task per shard, then publish);
# STEPS run each of those model tasks whole, in one process.
MODEL_PHASES: dict[str, Callable[..., Any]] = {
    "train_model": train_model,
    "score_model_shard": score_model_shard,
    "publish_model": publish_model,
}

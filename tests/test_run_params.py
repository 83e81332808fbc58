"""A run's params are checked for every stage before the first task writes anything."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tasks
from pipelines.errors import ConfigError
from pipelines.settings import PROJECT_ROOT, Settings
from tests.quality.store import CLEAN, load_store

BAD_PARAMS = [
    ({"overrides": {"recs": {"bogus_key": 1}}}, r"stage 'recs': unknown RecsConfig setting\(s\): bogus_key=1;"),
    (
        {"overrides": {"recs": {"max_epochs": "twenty"}}},
        r"stage 'recs': RecsConfig\.max_epochs must be an integer, got 'twenty'",
    ),
    (
        {"overrides": {"creatives": {"train_steps": 1.5}}},
        r"stage 'creatives': CreativesConfig\.train_steps must be an integer, got 1\.5",
    ),
    (
        {"overrides": {"quality": {"quantity_min": 9, "quantity_max": 3}}},
        r"stage 'quality': GateConfig\.quantity_min \(9\) must not exceed quantity_max \(3\)",
    ),
    ({"overrides": {"profiles": 5}}, r"overrides for stage 'profiles' must be an object of settings, got 5"),
    ({"overrides": {"rec": {}}}, r"unknown stage\(s\) in overrides: rec"),
    ({"force_promote": "yes"}, r"'force_promote' param must be true or false, got 'yes'"),
    ({"serve_with_current_champion": 1}, r"'serve_with_current_champion' param must be true or false, got 1"),
]


@pytest.mark.parametrize(("params", "problem"), BAD_PARAMS)
def test_every_stage_is_checked_and_the_error_names_stage_key_and_value(params: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        tasks.validate_run_params(Settings(), params)


def test_checks_the_profile_adjusted_configs_the_tasks_will_use() -> None:
    configs = tasks.validate_run_params(Settings(profile="demo"), {"overrides": {"recs": {"patience": 5}}})
    assert set(configs) == set(tasks.STAGES)
    assert configs["recs"].max_epochs == 15 and configs["recs"].patience == 5  # demo profile, then the run
    assert configs["creatives"].train_steps == 400


@pytest.mark.integration
def test_a_bad_config_fails_the_first_task_before_anything_is_written(engine: Engine, tmp_path: Path) -> None:
    load_store(engine)
    settings = Settings(state_dir=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"stage 'recs': RecsConfig\.max_epochs must be an integer, got 'twenty'"):
        tasks.check_data_quality(engine, CLEAN, settings, {"overrides": {"recs": {"max_epochs": "twenty"}}})
    assert written(engine) == {"dq_results": 0, "model_runs": 0, "user_profiles": 0, "segments": 0}
    assert not (tmp_path / "artifacts").exists()
    # The same run with a good config does write: the check above can fail.
    summary = tasks.check_data_quality(engine, CLEAN, settings, {"overrides": {"recs": {"max_epochs": 20}}})
    assert summary["verdict"] == "pass" and written(engine)["dq_results"] == summary["expectations"]


def written(engine: Engine) -> dict[str, int]:
    tables = ("dq_results", "model_runs", "user_profiles", "segments")
    with engine.connect() as conn:
        return {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() for table in tables}


@pytest.fixture(scope="module")
def overrides_param() -> Any:
    """The DAG's `overrides` Param, from the DAG file as Airflow parses it (airflow.sdk only, no database)."""
    spec = importlib.util.spec_from_file_location("marketing_daily_dag", PROJECT_ROOT / "dags" / "marketing_daily.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.marketing_daily().params.get_param("overrides")


def test_the_trigger_form_knows_exactly_the_tasks_stages(overrides_param: Any) -> None:
    assert set(overrides_param.schema["properties"]) == set(tasks.STAGES)
    assert overrides_param.schema["additionalProperties"] is False


@pytest.mark.parametrize("value", [{"rec": {"max_epochs": 20}}, {"recs": 20}, {"recs": "max_epochs=20"}])
def test_the_trigger_form_refuses_unknown_stages_and_non_objects(overrides_param: Any, value: Any) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        overrides_param.resolve(value)


def test_the_trigger_form_accepts_stage_objects(overrides_param: Any) -> None:
    value = {"recs": {"max_epochs": 20}, "quality": {"volume_tolerance": 0.3}}
    assert overrides_param.resolve(value) == value

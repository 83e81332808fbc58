"""Each task's torch thread budget: the setting, else the cores shared by the model tasks that can run at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pipelines.airflow_adapter import apply_thread_budget, concurrent_model_tasks
from pipelines.compute import thread_budget
from pipelines.errors import ConfigError
from pipelines.settings import Settings


@pytest.mark.parametrize(
    ("setting", "concurrent", "cores", "expected"),
    [
        (None, 1, 2, 2),  # alone: every core
        (None, 2, 2, 1),  # two model tasks on 2 cores: one each, not two each
        (None, 3, 8, 2),
        (None, 4, 2, 1),  # never below one thread
        (3, 2, 2, 3),  # the setting wins
    ],
)
def test_thread_budget(setting: int | None, concurrent: int, cores: int, expected: int) -> None:
    assert thread_budget(setting, concurrent, cores) == expected


def test_thread_budget_setting_is_validated() -> None:
    assert Settings.from_env({"PIPELINES_TORCH_THREADS": "4"}).torch_threads == 4
    for bad, message in (("0", "at least 1"), ("many", "an integer")):
        with pytest.raises(ConfigError, match=f"PIPELINES_TORCH_THREADS must be {message}"):
            Settings.from_env({"PIPELINES_TORCH_THREADS": bad})


@pytest.mark.parametrize(
    ("executor", "knob", "value", "pool_slots", "expected"),
    [
        ("LocalExecutor", "AIRFLOW__CORE__PARALLELISM", "32", 2, 2),  # the pool `gpu` caps model tasks
        ("LocalExecutor", "AIRFLOW__CORE__PARALLELISM", "1", 2, 1),
        ("LocalExecutor", "AIRFLOW__CORE__PARALLELISM", "0", 3, 3),  # 0: unlimited, only the pool caps
        ("CeleryExecutor", "AIRFLOW__CELERY__WORKER_CONCURRENCY", "1", 2, 1),
    ],
)
def test_concurrent_model_tasks_follow_the_worker_and_the_pool(
    monkeypatch: pytest.MonkeyPatch, executor: str, knob: str, value: str, pool_slots: int, expected: int
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.setenv(knob, value)
    assert concurrent_model_tasks(Settings(gpu_pool_slots=pool_slots)) == expected


@pytest.fixture
def torch_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("torch_threads")
def test_run_step_budget_sets_and_logs_torch_threads(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    caplog.set_level(logging.INFO, logger="pipelines.airflow_adapter")
    assert apply_thread_budget(Settings(torch_threads=1)) == torch.get_num_threads() == 1
    assert "torch threads: 1 (PIPELINES_TORCH_THREADS)" in caplog.text
    expected = thread_budget(None, concurrent_model_tasks(Settings(gpu_pool_slots=1)))
    assert apply_thread_budget(Settings(gpu_pool_slots=1)) == torch.get_num_threads() == expected
    assert "shared by up to 1 model task(s)" in caplog.text

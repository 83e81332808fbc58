"""The multi-machine docker-compose.yaml, checked for structure (no Docker engine runs here).

What must hold for the cluster to work at all: every Airflow service runs the project image on
CeleryExecutor with Redis and PostgreSQL, the GPU worker alone takes the `gpu` queue and reserves an
NVIDIA device, services wait for a successful set-up and report health, and artifacts are shared.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from pipelines.settings import PROJECT_ROOT

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}
LONG_RUNNING = AIRFLOW_SERVICES | {"postgres", "redis"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


def _queues(service: dict[str, Any]) -> set[str]:
    command = service["command"]
    text = command if isinstance(command, str) else " ".join(command)
    match = re.search(r"--queues[ =](\S+)", text)
    assert match, f"celery worker without --queues: {text}"
    return set(match.group(1).split(","))


def test_services_follow_the_official_airflow_shape(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == LONG_RUNNING | {"airflow-init"}
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "marketing-pipelines:latest", name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["PIPELINES_WAREHOUSE_URL"].endswith("@postgres/marketing"), name


def test_dockerfile_installs_the_pinned_requirements_and_the_project() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11", dockerfile, re.M)
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    for folder in ("src", "sql", "dags", "plugins"):
        assert re.search(rf"^COPY .*\b{folder} ", dockerfile, re.M), folder


def test_set_up_creates_pool_sized_from_the_environment_and_the_connection(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    assert init["command"][:4] == ["python", "-m", "pipelines", "setup"]
    assert "--create-databases" in init["command"]
    assert re.fullmatch(r"\$\{PIPELINES_GPU_POOL_SLOTS:-\d+\}", init["environment"]["PIPELINES_GPU_POOL_SLOTS"])
    for name in AIRFLOW_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name


def test_gpu_worker_alone_takes_the_gpu_queue_with_an_nvidia_reservation(compose: dict[str, Any]) -> None:
    services = compose["services"]
    cpu, gpu = services["airflow-worker"], services["airflow-worker-gpu"]
    assert _queues(gpu) == {"gpu"} and "gpu" not in _queues(cpu) and "default" in _queues(cpu)
    assert re.search(r"--concurrency[ =]1\b", gpu["command"])  # one model task per GPU at a time
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in cpu
    for worker in (cpu, gpu):
        assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
        assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown of running tasks


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert compose["services"][name]["restart"] == "always", name
    assert "/api/v2/version" in " ".join(compose["services"]["airflow-apiserver"]["healthcheck"]["test"])


def test_volumes_share_artifacts_and_keep_the_database(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) >= {"postgres-data", "artifacts", "logs"}
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    for name in AIRFLOW_SERVICES:  # the API server shows plots and Data Docs that the workers write
        mounts = compose["services"][name]["volumes"]
        assert "artifacts:/opt/airflow/artifacts" in mounts and "logs:/opt/airflow/logs" in mounts, name
        assert compose["services"][name]["environment"]["PIPELINES_ARTIFACTS_DIR"] == "/opt/airflow/artifacts"


def test_api_server_publishes_the_ui_and_plugin_folder_is_configured(compose: dict[str, Any]) -> None:
    api = compose["services"]["airflow-apiserver"]
    assert api["command"] == "api-server" and "8080:8080" in api["ports"]
    assert api["environment"]["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/project/plugins"
    assert (PROJECT_ROOT / "plugins" / "marketing_plugin.py").is_file()

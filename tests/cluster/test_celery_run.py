"""A real CeleryExecutor cluster on this machine runs one marketing_daily DAG run on a tiny store.

Redis is the broker, PostgreSQL the metadata database and the Celery result backend. The test starts
redis-server, the API server (the workers' Execution API), the scheduler and two Celery workers: one on
the default queue, one on `gpu` (with two slots, so only the Airflow pool `gpu` of one slot can keep GPU
tasks apart). Then: GPU-pool tasks ran on the gpu worker, the others did not, and no two GPU tasks
overlapped in time. Every process is started in its own process group and ended at teardown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.sources import TINY_STORE, load_synthetic_store
from pipelines.stack import Stack
from pipelines.warehouse.engine import get_engine
from tests.stacks import prepared_stack

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

REDIS = shutil.which("redis-server")
RUN_ID = "manual__celery_cluster"
GPU_TASKS = {"train_user_profile_vae", "refresh_recommendations", "generate_ad_creatives"}
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 900
# Routing and the pool are under test, not the models: the smallest training that still runs every step.
TINY_MODELS = {
    "profiles": {"epochs": 2},
    "recs": {"max_epochs": 2},
    "creatives": {"train_steps": 20, "classifier_epochs": 1},
}

if REDIS is None:
    pytest.skip("redis-server is not installed (Debian package redis-server)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, what: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a cluster process exited with {process.returncode}; logs in {logs}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not listen on {port} within {START_TIMEOUT_S} s; logs in {logs}")


def _tagged(token: str) -> list[int]:
    """Processes whose environment carries this cluster's token (task runners outlive a killed worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if f"CLUSTER_TEST_TOKEN={token}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def _stop(processes: list[subprocess.Popen[bytes]], token: str) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for pid in _tagged(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster_stack(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with prepared_stack(
        pg_server_url,
        template_database,
        tmp_path_factory.mktemp("celery-state"),
        "celery",
        gpu_pool_slots=1,
        profile="demo",
        fashion_mnist_dir=Settings.from_env().fashion_mnist_dir,  # CI: the Debian package; else this variable
    ) as stack:
        load_synthetic_store(get_engine(stack.warehouse_url), TINY_STORE, stack.settings.fashion_mnist_path())
        yield stack


@pytest.fixture(scope="module")
def finished_run(cluster_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    """Start the cluster, run one DAG run to its end, stop the cluster; task instances by task id."""
    logs = tmp_path_factory.mktemp("cluster-logs")
    token = uuid.uuid4().hex
    redis_port, api_port = _free_port(), _free_port()
    metadata = sa.engine.make_url(cluster_stack.airflow_db_url).set(drivername="postgresql")
    env = cluster_stack.airflow_env()
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata.render_as_string(hide_password=False),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.cluster.worker_name.worker_name",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "CLUSTER_TEST_TOKEN": token,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(PROJECT_ROOT), env.get("PYTHONPATH")))),
        }
    )
    airflow = [sys.executable, "-m", "airflow"]

    def start(name: str, command: list[str], **extra: str) -> subprocess.Popen[bytes]:
        with (logs / f"{name}.log").open("wb") as out:
            return subprocess.Popen(
                command, env={**env, **extra}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def cli(*args: str) -> str:
        done = subprocess.run([*airflow, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stderr[-3000:]}"
        return done.stdout

    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start("redis", [REDIS, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]))
        _wait_port(redis_port, "redis", processes, logs)
        processes.append(
            start(
                "api-server", [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
            )
        )
        _wait_port(api_port, "the API server", processes, logs)
        cli("dags", "reserialize")
        worker = [*airflow, "celery", "worker", "--skip-serve-logs", "--without-gossip", "--without-mingle"]
        processes.append(
            start(
                "worker-cpu",
                [*worker, "--queues", "default", "--concurrency", "1", "--celery-hostname", "cpu@%h"],
                CLUSTER_TEST_WORKER_NAME="cpu-worker",
            )
        )
        processes.append(
            start(
                "worker-gpu",
                [*worker, "--queues", "gpu", "--concurrency", "2", "--celery-hostname", "gpu@%h"],
                CLUSTER_TEST_WORKER_NAME="gpu-worker",
            )
        )
        conf = json.dumps({"business_date": TINY_STORE.end_date.isoformat(), "overrides": TINY_MODELS})
        cli("dags", "trigger", "marketing_daily", "--run-id", RUN_ID, "--conf", conf)
        cli("dags", "unpause", "marketing_daily")
        processes.append(start("scheduler", [*airflow, "scheduler"]))
        metadata_engine = sa.create_engine(metadata.set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        state = None
        while time.monotonic() < deadline:
            for process in processes:
                assert process.poll() is None, f"a cluster process exited early; logs in {logs}"
            with metadata_engine.connect() as conn:
                state = conn.execute(
                    sa.text("SELECT state FROM dag_run WHERE dag_id = 'marketing_daily' AND run_id = :r"), {"r": RUN_ID}
                ).scalar()
            if state in ("success", "failed"):
                break
            time.sleep(3)
        with metadata_engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    """SELECT task_id, state, pool, queue, hostname, start_date, end_date FROM task_instance
                       WHERE dag_id = 'marketing_daily' AND run_id = :r"""
                ),
                {"r": RUN_ID},
            ).mappings()
            instances = {row["task_id"]: dict(row) for row in rows}
        metadata_engine.dispose()
        assert state == "success", f"run ended {state!r}: {instances}; logs in {logs}"
        yield instances
    finally:
        _stop(processes, token)


def test_gpu_pool_tasks_run_on_the_gpu_worker_only(finished_run: dict[str, dict]) -> None:
    assert set(finished_run) >= GPU_TASKS | {"check_data_quality", "publish_report"}
    for task_id, ti in finished_run.items():
        assert ti["state"] == "success", task_id
        if ti["pool"] == "gpu":
            assert (ti["queue"], ti["hostname"]) == ("gpu", "gpu-worker"), task_id
        else:
            assert ti["queue"] != "gpu" and ti["hostname"] == "cpu-worker", task_id
    assert {t for t, ti in finished_run.items() if ti["pool"] == "gpu"} == GPU_TASKS


def test_no_two_gpu_tasks_overlap_with_one_pool_slot(finished_run: dict[str, dict]) -> None:
    spans = sorted((ti["start_date"], ti["end_date"]) for t, ti in finished_run.items() if t in GPU_TASKS)
    assert all(isinstance(s, dt.datetime) and isinstance(e, dt.datetime) for s, e in spans)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start, spans

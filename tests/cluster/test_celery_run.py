"""A real CeleryExecutor cluster on this machine runs one marketing_daily DAG run on a tiny store.

Redis is the broker, PostgreSQL the metadata database and the Celery result backend. The test starts
redis-server, the API server (the workers' Execution API), the scheduler and two Celery workers: one on
the default queue, one on `gpu` (with two slots, so only the Airflow pool `gpu` of one slot can keep GPU
tasks apart). Then: GPU-pool tasks ran on the gpu worker, the others did not, and no two GPU tasks
overlapped in time. Every process is started in its own process group and ended at teardown.

The model tasks score in four user shards. While the first recommendation shard has copied its rows and
waits to attach them (the test holds a lock on the staging table), the test kills its task process with
SIGKILL; Airflow retries that shard alone, and the published rows equal a one-shard write of the same date
(ordered checksum).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import tasks
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.sources import TINY_STORE, load_synthetic_store
from pipelines.stack import Stack
from pipelines.warehouse.engine import get_engine
from tests.stacks import prepared_stack

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

REDIS = shutil.which("redis-server")
RUN_ID = "manual__celery_cluster"
GPU_TASKS = {
    "train_user_profile_vae",
    "score_user_profiles",
    "publish_user_profiles",
    "refresh_recommendations",
    "score_recommendations",
    "publish_recommendations",
    "generate_ad_creatives",
}
SHARDS = 4
STAGING = f"recommendations_p{TINY_STORE.end_date:%Y%m%d}_staged"
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


class _ShardKiller:
    """Once the staging table exists: lock it against attaching, wait until a shard has copied its rows and
    waits on that lock, SIGKILL the shard's task process, then let go."""

    def __init__(self, warehouse: sa.Engine, metadata: sa.Engine) -> None:
        self.warehouse, self.metadata = warehouse, metadata
        self.lock: sa.Connection | None = None
        self.killed: dict[str, Any] | None = None

    def step(self) -> None:
        if self.killed is not None:
            return
        if self.lock is None:
            with self.warehouse.connect() as conn:
                if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": STAGING}).scalar() is None:
                    return
            self.lock = self.warehouse.connect()
            self.lock.execute(sa.text(f'LOCK TABLE "{STAGING}" IN SHARE MODE'))  # conflicts with ATTACH only
            return
        with self.warehouse.connect() as conn:
            waiting = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"),
                {"q": f'ALTER TABLE "{STAGING}" ATTACH PARTITION%'},
            ).scalar()
        if not waiting:
            return
        with self.metadata.connect() as conn:
            running = (
                conn.execute(
                    sa.text(
                        """SELECT map_index, try_number, pid FROM task_instance WHERE dag_id = 'marketing_daily'
                       AND run_id = :r AND task_id = 'score_recommendations' AND state = 'running'"""
                    ),
                    {"r": RUN_ID},
                )
                .mappings()
                .all()
            )
        assert len(running) == 1 and running[0]["pid"], running  # one slot in the pool gpu: one shard at a time
        os.kill(running[0]["pid"], signal.SIGKILL)
        self.killed = dict(running[0])
        self.release()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()  # rolls back: the lock goes
            self.lock = None


def _checksums(stack: Stack) -> dict[str, tuple[int, str]]:
    """Rows and ordered checksum of the date's per-user outputs."""
    with get_engine(stack.warehouse_url).connect() as conn:
        return {
            table: tuple(
                conn.execute(
                    sa.text(
                        f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t"
                        " WHERE as_of_date = :d"
                    ),
                    {"d": TINY_STORE.end_date},
                ).one()
            )
            for table, order in (("user_profiles", "user_id"), ("segments", "segment_id"),
                                 ("recommendations", "user_id, rank"))
        }  # fmt: skip


def _recommendations(stack: Stack) -> list[tuple]:
    with get_engine(stack.warehouse_url).connect() as conn:
        query = "SELECT user_id, rank, item_id, score, source, model_version FROM recommendations ORDER BY 1, 2"
        return [tuple(row) for row in conn.execute(sa.text(query))]


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
def finished_run(cluster_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the cluster, run one DAG run to its end (killing one recommendation shard mid-write), stop the
    cluster; the task instances by (task id, map index), the killed shard and the outputs' checksums."""
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
            "PIPELINES_SCORE_SHARDS": str(SHARDS),
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
        killer = _ShardKiller(get_engine(cluster_stack.warehouse_url), metadata_engine)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        state = None
        try:
            while time.monotonic() < deadline:
                for process in processes:
                    assert process.poll() is None, f"a cluster process exited early; logs in {logs}"
                killer.step()
                with metadata_engine.connect() as conn:
                    state = conn.execute(
                        sa.text("SELECT state FROM dag_run WHERE dag_id = 'marketing_daily' AND run_id = :r"),
                        {"r": RUN_ID},
                    ).scalar()
                if state in ("success", "failed"):
                    break
                time.sleep(1)
        finally:
            killer.release()
        with metadata_engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    """SELECT task_id, map_index, try_number, state, pool, queue, hostname, start_date, end_date
                       FROM task_instance WHERE dag_id = 'marketing_daily' AND run_id = :r"""
                ),
                {"r": RUN_ID},
            ).mappings()
            instances = {(row["task_id"], row["map_index"]): dict(row) for row in rows}
        metadata_engine.dispose()
        assert state == "success", f"run ended {state!r}: {instances}; logs in {logs}"
        yield {
            "instances": instances,
            "killed": killer.killed,
            "checksums": _checksums(cluster_stack),
            "recommendations": _recommendations(cluster_stack),
        }
    finally:
        _stop(processes, token)


def test_gpu_pool_tasks_run_on_the_gpu_worker_only(finished_run: dict[str, Any]) -> None:
    instances = finished_run["instances"]
    assert {t for t, _ in instances} >= GPU_TASKS | {"check_data_quality", "publish_report"}
    for (task_id, _), ti in instances.items():
        assert ti["state"] == "success", task_id
        if ti["pool"] == "gpu":
            assert (ti["queue"], ti["hostname"]) == ("gpu", "gpu-worker"), task_id
        else:
            assert ti["queue"] != "gpu" and ti["hostname"] == "cpu-worker", task_id
    assert {t for (t, _), ti in instances.items() if ti["pool"] == "gpu"} == GPU_TASKS


def test_no_two_gpu_tasks_overlap_with_one_pool_slot(finished_run: dict[str, Any]) -> None:
    instances = finished_run["instances"]
    spans = sorted((ti["start_date"], ti["end_date"]) for (t, _), ti in instances.items() if t in GPU_TASKS)
    assert all(isinstance(s, dt.datetime) and isinstance(e, dt.datetime) for s, e in spans)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start, spans


def test_a_shard_killed_mid_write_is_retried_alone_and_the_rows_equal_one_shard(
    finished_run: dict[str, Any], cluster_stack: Stack
) -> None:
    instances, killed = finished_run["instances"], finished_run["killed"]
    for task in ("score_user_profiles", "score_recommendations"):
        assert sorted(i for t, i in instances if t == task) == list(range(SHARDS))
    assert killed is not None, "no shard was caught mid-write"
    tries = {i: ti["try_number"] for (t, i), ti in instances.items() if t == "score_recommendations"}
    assert tries == {i: killed["try_number"] + 1 if i == killed["map_index"] else 1 for i in range(SHARDS)}
    # The same date served by the same champions, written as one shard in this process.
    settings = dataclasses.replace(cluster_stack.settings, score_shards=1)
    engine = get_engine(cluster_stack.warehouse_url)
    params = {"serve_with_current_champion": True, "overrides": TINY_MODELS}
    for step in ("train_user_profile_vae", "refresh_recommendations"):
        summary = tasks.STEPS[step](engine, TINY_STORE.end_date, settings, params)
        assert summary["outputs"]["shards"] == 1
    differing = [
        (a, b) for a, b in zip(finished_run["recommendations"], _recommendations(cluster_stack), strict=True) if a != b
    ]
    assert not differing, f"{len(differing)} rows differ, e.g. {differing[:5]}"
    assert _checksums(cluster_stack) == finished_run["checksums"]

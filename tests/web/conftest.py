"""A real Airflow API server (with the Marketing plugin) on a free loopback port, on the DAG tests' stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.stack import Stack
from pipelines.warehouse.engine import get_engine
from tests.stacks import prepared_stack
from tests.web.sample import SampleSpec, write_sample

USER, PASSWORD = "alice", "correct-horse-battery"
START_TIMEOUT_S = 120
RUN_ID = "manual__marketing_sample"


@dataclass(frozen=True)
class ApiServer:
    url: str
    stack: Stack
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/version", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the API server did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def web_stack(pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A prepared stack of its own (the DAG tests' warehouse holds another store) with the sample date."""
    with prepared_stack(
        pg_server_url, template_database, tmp_path_factory.mktemp("web-state"), "web", gpu_pool_slots=1, profile="demo"
    ) as stack:
        spec = SampleSpec()
        write_sample(get_engine(stack.warehouse_url), spec, stack.settings.artifacts)
        # A marketing_daily run for the sample date (never executed: no scheduler) gives the UI a run tab.
        stack.airflow("dags", "reserialize", capture=True)
        conf = json.dumps({"business_date": spec.day.isoformat()})
        stack.airflow("dags", "trigger", "marketing_daily", "--run-id", RUN_ID, "--conf", conf, capture=True)
        yield stack


@pytest.fixture(scope="session")
def api_server(web_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """`airflow api-server` with one worker and a known user, on the web stack."""
    airflow_stack = web_stack
    folder = tmp_path_factory.mktemp("api-server")
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    env = airflow_stack.airflow_env()
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    log = folder / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the cleanup below reaches its workers too
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log)
        yield ApiServer(url, airflow_stack, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

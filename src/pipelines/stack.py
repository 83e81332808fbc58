"""The running stack: where the warehouse and Airflow's metadata live, and Airflow's environment.

On one machine both are databases (`marketing`, `airflow`) on the embedded PostgreSQL; point
PIPELINES_WAREHOUSE_URL and AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at an external server instead and
nothing else changes. Set-up (`prepare`) is idempotent: migrations, the pool `gpu` and the connection
`marketing_db` are brought to the wanted state on every call.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from pipelines.errors import ConfigError
from pipelines.settings import ENV_VARS, PROJECT_ROOT, Settings
from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.engine import database_url, ensure_database, get_engine, normalize_url
from pipelines.warehouse.migrations import apply_migrations

log = logging.getLogger(__name__)

WAREHOUSE_DB = "marketing"
AIRFLOW_DB = "airflow"
CONNECTION_ID = "marketing_db"
GPU_POOL = "gpu"
AIRFLOW_DB_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


@dataclass(frozen=True)
class Stack:
    warehouse_url: str
    airflow_db_url: str
    settings: Settings

    def airflow_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for any Airflow process of this stack (CLI, standalone, `dags test`)."""
        env = dict(os.environ if base is None else base)
        # `airflow standalone` starts its components as `airflow ...`: this interpreter's bin first.
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        # Idle torch (OpenMP) threads sleep instead of spinning: task processes share the machine's cores.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update(
            {
                "AIRFLOW_HOME": str(self.settings.airflow_home),
                AIRFLOW_DB_ENV: self.airflow_db_url,
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                # A local UI by default: the simple auth manager's passwords are plain text in AIRFLOW_HOME.
                "AIRFLOW__API__HOST": self.settings.api_host,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.settings.airflow_passwords_file),
                # The settings the tasks need travel with the environment of every Airflow process.
                "PIPELINES_STATE_DIR": str(self.settings.state_dir),
                "PIPELINES_ARTIFACTS_DIR": str(self.settings.artifacts),
                "GX_ANALYTICS_ENABLED": "False",
            }
        )
        for name, (attr, _) in ENV_VARS.items():
            value = getattr(self.settings, attr)
            if value is not None and name not in env and attr != "warehouse_url":
                env[name] = str(value)
        return env

    def airflow(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the Airflow CLI of this stack."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.airflow_env(),
            text=True,
            capture_output=capture,
            check=False,
        )
        if check and done.returncode != 0:
            detail = (done.stderr or "")[-3000:] if capture else "(see the output above)"
            raise ConfigError(f"`airflow {' '.join(args)}` failed with exit code {done.returncode}: {detail}")
        return done


def resolve(settings: Settings, environ: Mapping[str, str] | None = None) -> Stack:
    """Find or start the databases: external URLs when configured, else the embedded server."""
    env = os.environ if environ is None else environ
    warehouse = settings.warehouse_url
    airflow_db = env.get(AIRFLOW_DB_ENV) or None
    if warehouse is None or airflow_db is None:
        server = EmbeddedPostgres(settings.pgdata, settings.embedded_port).start()
        if warehouse is None:
            ensure_database(server, WAREHOUSE_DB)
            warehouse = database_url(server, WAREHOUSE_DB).render_as_string(hide_password=False)
        if airflow_db is None:
            ensure_database(server, AIRFLOW_DB)
            airflow_db = database_url(server, AIRFLOW_DB).render_as_string(hide_password=False)
    return Stack(normalize_url(warehouse).render_as_string(hide_password=False), airflow_db, settings)


def prepare(stack: Stack) -> list[str]:
    """Bring the stack to the wanted state; return the warehouse migrations applied now."""
    applied = apply_migrations(get_engine(stack.warehouse_url))
    log.info("warehouse schema current (%d migration(s) applied now)", len(applied))
    stack.airflow("db", "migrate", capture=True)
    slots = str(stack.settings.gpu_pool_slots)
    stack.airflow("pools", "set", GPU_POOL, slots, "Model training and inference (one GPU per slot)", capture=True)
    stack.airflow("connections", "delete", CONNECTION_ID, check=False, capture=True)
    stack.airflow(
        "connections", "add", CONNECTION_ID, "--conn-uri", airflow_conn_uri(stack.warehouse_url), capture=True
    )
    log.info("Airflow metadata migrated; pool %s has %s slot(s); connection %s set", GPU_POOL, slots, CONNECTION_ID)
    return applied


def secure_passwords_file(settings: Settings) -> Path:
    """Create the generated-passwords file readable by its owner only; Airflow would create it 0644.

    Airflow rewrites the file in place, so the mode set here is kept; an older, wider file is narrowed.
    """
    path = settings.airflow_passwords_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    return path


def airflow_conn_uri(warehouse_url: str) -> str:
    """The warehouse URL in Airflow's connection-URI form (`postgres://`, conn_type postgres)."""
    return make_url(warehouse_url).set(drivername="postgres").render_as_string(hide_password=False)


def pools(stack: Stack) -> dict[str, int]:
    """Pool name -> slots, as Airflow's metadata database has them."""
    done = stack.airflow("pools", "list", "--output", "json", capture=True)
    return {p["pool"]: int(p["slots"]) for p in json.loads(done.stdout)}


def dags_test(stack: Stack, dag_id: str, conf: Mapping[str, object], logical_date: str | None = None) -> int:
    """Run one real DAG run in-process with `airflow dags test`; return the exit code."""
    args: Sequence[str] = ["dags", "test", dag_id, *([logical_date] if logical_date else [])]
    return stack.airflow(*args, "--conf", json.dumps(dict(conf)), check=False).returncode

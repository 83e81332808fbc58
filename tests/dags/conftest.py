"""An Airflow stack for the DAG tests: a metadata database and a warehouse on the test server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.settings import Settings
from pipelines.stack import Stack, prepare
from pipelines.warehouse.engine import database_url

GPU_POOL_SLOTS = 2


def _create(server_url: str, name: str, template: str | None = None) -> str:
    admin = sa.create_engine(database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin.dispose()
    return database_url(server_url, name).render_as_string(hide_password=False)


def _drop(server_url: str, name: str) -> None:
    admin = sa.create_engine(database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def airflow_stack(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A prepared stack (metadata migrated, pool gpu, connection marketing_db -> its own warehouse)."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"airflow_{suffix}", f"warehouse_{suffix}")
    airflow_url = _create(pg_server_url, names[0])
    warehouse_url = _create(pg_server_url, names[1], template_database)
    state: Path = tmp_path_factory.mktemp("state")
    settings = Settings(state_dir=state, gpu_pool_slots=GPU_POOL_SLOTS, profile="demo")
    stack = Stack(warehouse_url=warehouse_url, airflow_db_url=airflow_url, settings=settings)
    prepare(stack)
    yield stack
    for name in names:
        _drop(pg_server_url, name)

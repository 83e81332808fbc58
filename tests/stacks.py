"""Test helpers: databases on the test server and prepared Airflow stacks of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.settings import Settings
from pipelines.stack import Stack, prepare
from pipelines.warehouse.engine import database_url, get_engine


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(
        database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create `name` (a clone of `template` when given) and return its URL."""
    with _admin(server_url).connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return database_url(server_url, name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url).connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def prepared_stack(server_url: str, template: str, state_dir: Path, label: str, **settings: Any) -> Iterator[Stack]:
    """A stack with its own metadata database and migrated warehouse, set up like `make demo` does."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"airflow_{label}_{suffix}", f"warehouse_{label}_{suffix}")
    airflow_url = create_database(server_url, names[0])
    warehouse_url = create_database(server_url, names[1], template)
    # The images `make test` found (it passes PIPELINES_FASHION_MNIST_DIR), wherever the state folder is.
    settings.setdefault("fashion_mnist_dir", Settings.from_env().fashion_mnist_dir)
    try:
        stack = Stack(
            warehouse_url=warehouse_url, airflow_db_url=airflow_url, settings=Settings(state_dir=state_dir, **settings)
        )
        prepare(stack)
        yield stack
    finally:
        get_engine(warehouse_url).dispose()
        for name in names:
            drop_database(server_url, name)

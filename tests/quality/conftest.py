"""Module-scoped databases: the gate's tests share loaded stores and validate each date once.

Great Expectations takes about a second per validation, so tests that only read a validation's outcome
share it through module-scoped fixtures instead of re-running it. The databases are cloned from the
session's migrated template, exactly like the `engine` fixture's, and dropped at the end of the module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.engine import database_url
from tests.quality.store import load_store


@pytest.fixture(scope="module")
def new_database(pg_server_url: str, template_database: str) -> Iterator[Callable[[], Engine]]:
    """A factory of engines on fresh migrated databases, all dropped when the module is done."""
    admin = sa.create_engine(
        database_url(pg_server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    made: list[tuple[str, Engine]] = []

    def make() -> Engine:
        name = f"q_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        engine = sa.create_engine(database_url(pg_server_url, name), connect_args={"options": "-c timezone=UTC"})
        made.append((name, engine))
        return engine

    yield make
    with admin.connect() as conn:
        for name, engine in made:
            engine.dispose()
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def store_engine(new_database: Callable[[], Engine]) -> Engine:
    """An engine on a database holding the test store (tests.quality.store)."""
    engine = new_database()
    load_store(engine)
    return engine

"""Shared fixtures: a real PostgreSQL server and a fresh, migrated database per test.

The server is the one named by TEST_DATABASE_URL when it is set (any PostgreSQL the tests may create
databases on), else an embedded PostgreSQL 18 started in a temporary folder for the session.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine spinning torch threads fight
# the other processes and a tiny training step runs 10-60x slower. Set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.warehouse.embedded import EmbeddedPostgres
from pipelines.warehouse.engine import normalize_url
from pipelines.warehouse.migrations import apply_migrations
from tests.stacks import create_database, drop_database

TEMPLATE_DB = "pipelines_test_template"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create and drop databases on."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield normalize_url(external).render_as_string(hide_password=False)
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg") / "pgdata", port=_free_port())
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> str:
    """A migrated database that each test's database is cloned from (cloning is ~100x faster)."""
    drop_database(pg_server_url, TEMPLATE_DB)
    engine = sa.create_engine(create_database(pg_server_url, TEMPLATE_DB), poolclass=sa.pool.NullPool)
    apply_migrations(engine)
    engine.dispose()
    return TEMPLATE_DB


@pytest.fixture
def database_url_for_test(pg_server_url: str, template_database: str) -> Iterator[str]:
    """URL of a fresh migrated database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name, template_database)
    drop_database(pg_server_url, name)


@pytest.fixture
def engine(database_url_for_test: str) -> Iterator[Engine]:
    """An engine on a fresh migrated database."""
    eng = sa.create_engine(database_url_for_test, connect_args={"options": "-c timezone=UTC"})
    yield eng
    eng.dispose()

"""An Airflow stack for the DAG tests: a metadata database and a warehouse on the test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.stack import Stack
from tests.stacks import prepared_stack

GPU_POOL_SLOTS = 2


@pytest.fixture(scope="session")
def airflow_stack(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A prepared stack (metadata migrated, pool gpu, connection marketing_db -> its own warehouse)."""
    with prepared_stack(
        pg_server_url,
        template_database,
        tmp_path_factory.mktemp("state"),
        "dags",
        gpu_pool_slots=GPU_POOL_SLOTS,
        profile="demo",
    ) as stack:
        yield stack

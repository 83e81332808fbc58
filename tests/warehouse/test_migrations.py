"""Migrations: applied in order, each once; re-applying is a no-op; history is append-only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import MigrationError
from pipelines.warehouse.migrations import SQL_DIR, apply_migrations, discover

pytestmark = pytest.mark.integration


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_applying_twice_is_a_no_op(engine: Engine) -> None:
    # The fixture's database is already migrated: a second application finds nothing to do.
    assert apply_migrations(engine) == []
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT filename FROM schema_migrations ORDER BY version")).scalars().all()
    assert recorded == [m.path.name for m in discover()]
    assert {"users", "items", "item_images", "events", "campaigns"} <= _tables(engine)
    assert {"dq_results", "model_runs", "user_profiles", "segments", "recommendations", "ad_creatives"} <= _tables(
        engine
    )


def test_pending_files_apply_in_order_in_one_transaction(engine: Engine, tmp_path: Path) -> None:
    for path in SQL_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "900_good.sql").write_text("CREATE TABLE extra_a (id int);")
    (tmp_path / "901_broken.sql").write_text("CREATE TABLE extra_b (id int); SELECT no_such_function();")

    with pytest.raises(sa.exc.ProgrammingError, match="no_such_function"):
        apply_migrations(engine, tmp_path)
    assert "extra_a" not in _tables(engine)  # 900 rolled back with 901

    (tmp_path / "901_broken.sql").write_text("CREATE TABLE extra_b (id int);")
    assert apply_migrations(engine, tmp_path) == ["900_good.sql", "901_broken.sql"]
    assert {"extra_a", "extra_b"} <= _tables(engine)


def test_an_edited_applied_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    for path in SQL_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        apply_migrations(engine, tmp_path)


@pytest.mark.parametrize(
    ("names", "message"),
    [(["1_short.sql"], "named NNN_snake_case.sql"), (["004_a.sql", "004_b.sql"], "version 4 is also")],
)
def test_misnamed_or_duplicate_versions_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=message):
        discover(tmp_path)

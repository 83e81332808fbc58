"""Loading the synthetic store into PostgreSQL: counts, references, pictures, and all-or-nothing replacement."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy.engine import Engine

from pipelines.sources import CATEGORIES, TINY_STORE, load_synthetic_store
from pipelines.sources.generator import generate_events
from pipelines.sources.load import replace_source_tables
from pipelines.sources.world import build_world
from pipelines.warehouse.reads import read_frame
from tests.sources.fixtures import table_counts, write_fashion_mnist

pytestmark = pytest.mark.integration


def _event_indexes(engine: Engine) -> dict[str, str]:
    frame = read_frame(engine, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'")
    return dict(zip(frame["indexname"], frame["indexdef"], strict=True))


def test_tiny_store_loads_with_intact_references_and_no_pictures_without_images(engine: Engine) -> None:
    indexes = _event_indexes(engine)
    summary = load_synthetic_store(engine, TINY_STORE, None)
    assert _event_indexes(engine) == indexes and len(indexes) == 4  # dropped for the COPY, built again
    expected_events = sum(len(f) for f in generate_events(build_world(TINY_STORE)))
    counts = table_counts(engine)
    assert counts == {"users": 300, "items": 120, "item_images": 0, "events": expected_events, "campaigns": 3}
    assert dict(summary.rows) == counts and summary.rows_per_s > 0
    orphans = read_frame(
        engine,
        """SELECT
             (SELECT count(*) FROM events e LEFT JOIN users u USING (user_id) WHERE u.user_id IS NULL) AS users,
             (SELECT count(*) FROM events e LEFT JOIN items i USING (item_id) WHERE i.item_id IS NULL) AS items,
             (SELECT count(DISTINCT event_id) FROM events) AS distinct_ids,
             (SELECT count(*) FROM events WHERE event_ts::date <> batch_date) AS outside_day""",
    ).iloc[0]
    assert orphans["users"] == 0 and orphans["items"] == 0 and orphans["outside_day"] == 0
    assert orphans["distinct_ids"] == expected_events
    live = read_frame(
        engine,
        "SELECT count(*) AS n FROM campaigns WHERE :d BETWEEN start_date AND end_date",
        {"d": TINY_STORE.end_date},
    ).iloc[0]["n"]
    assert live >= 1


def test_a_load_leaves_fresh_planner_statistics(engine: Engine) -> None:
    # Without them the first queries on a new database planned so badly that the day's checks took 108 s.
    started = read_frame(engine, "SELECT now() AS t").iloc[0]["t"]
    load_synthetic_store(engine, TINY_STORE, None)
    analysed = read_frame(engine, "SELECT relname, last_analyze FROM pg_stat_user_tables")
    last = dict(zip(analysed["relname"], analysed["last_analyze"], strict=True))
    assert all(last[table] is not None and last[table] >= started for table in ("users", "items", "events"))


def test_items_get_a_picture_of_their_own_category_when_images_exist(engine: Engine, tmp_path: Path) -> None:
    labels = write_fashion_mnist(tmp_path / "fmnist")
    load_synthetic_store(engine, TINY_STORE, tmp_path / "fmnist")
    pictures = read_frame(
        engine,
        "SELECT i.category, m.image, m.width, m.height, m.source FROM item_images m JOIN items i USING (item_id)",
    )
    assert len(pictures) == TINY_STORE.items
    for row in pictures.itertuples():
        image = np.asarray(Image.open(io.BytesIO(bytes(row.image))))
        index = int(row.source.rsplit(":", 1)[1])
        assert image.shape == (28, 28) == (row.height, row.width)
        assert (image == index).all()  # the very image the source names...
        assert CATEGORIES[labels[index]] == row.category  # ...and it shows the item's category


def test_a_second_load_replaces_the_first(engine: Engine) -> None:
    load_synthetic_store(engine, TINY_STORE, None)
    smaller = dataclasses.replace(TINY_STORE, users=50, items=30, days=5, campaigns=1)
    load_synthetic_store(engine, smaller, None)
    counts = table_counts(engine)
    assert counts["users"] == 50 and counts["items"] == 30 and counts["campaigns"] == 1
    days = read_frame(engine, "SELECT min(batch_date) AS lo, max(batch_date) AS hi FROM events").iloc[0]
    assert (days["lo"], days["hi"]) == (smaller.start_date, smaller.end_date)


def test_a_load_failing_half_way_leaves_the_previous_store(engine: Engine) -> None:
    load_synthetic_store(engine, TINY_STORE, None)
    before = table_counts(engine)

    def broken_events():  # noqa: ANN202
        yield next(iter(generate_events(build_world(TINY_STORE))))
        raise RuntimeError("the feed died")

    with pytest.raises(RuntimeError, match="feed died"):
        replace_source_tables(
            engine,
            "broken",
            [("users", [pd.DataFrame({"user_id": [1], "signup_date": ["2026-01-01"]})]), ("events", broken_events())],
        )
    assert table_counts(engine) == before
    assert len(_event_indexes(engine)) == 4


def test_importing_the_package_loads_neither_pandas_nor_numpy() -> None:
    code = "import sys, pipelines.sources as s; s.StoreConfig(); print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

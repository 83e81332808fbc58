"""Generate the synthetic fashion store and load it into the source tables (replacing what was there)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from pipelines.sources.config import StoreConfig
from pipelines.sources.load import LoadSummary, replace_source_tables

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.sources.world import World

log = logging.getLogger(__name__)


def store_tables(
    world: World, images_dir: Path | None
) -> Iterator[tuple[str, list[pd.DataFrame] | Iterator[pd.DataFrame]]]:
    """`(table, frames)` of the whole store; events are produced lazily, chunk by chunk."""
    from pipelines.sources.generator import generate_events
    from pipelines.sources.images import item_images_frame
    from pipelines.sources.world import campaigns_frame, items_frame, users_frame

    yield "users", [users_frame(world)]
    yield "items", [items_frame(world)]
    if images_dir is not None:
        yield "item_images", [item_images_frame(world.item_category, images_dir, world.config.seed)]
    else:
        log.info("no Fashion-MNIST folder: the store has no item images")
    yield "campaigns", [campaigns_frame(world)]
    yield "events", generate_events(world)


def load_synthetic_store(engine: Engine, config: StoreConfig, images_dir: Path | None) -> LoadSummary:
    """Replace the source tables with the store of `config`; item pictures from `images_dir` when given."""
    from pipelines.sources.world import build_world

    log.info(
        "generating a store of %s users, %s items, %s days up to %s (about %s events)",
        f"{config.users:,}",
        f"{config.items:,}",
        config.days,
        config.end_date,
        f"{config.expected_events():,.0f}",
    )
    return replace_source_tables(engine, "synthetic store", store_tables(build_world(config), images_dir))

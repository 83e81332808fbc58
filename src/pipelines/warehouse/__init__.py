"""PostgreSQL: engines, the embedded server, migrations from sql/, as-of reads, atomic partition writes."""

from pipelines.warehouse.engine import get_engine, normalize_url
from pipelines.warehouse.migrations import apply_migrations
from pipelines.warehouse.partitions import copy_frames, replace_partition

__all__ = ["apply_migrations", "copy_frames", "get_engine", "normalize_url", "replace_partition"]

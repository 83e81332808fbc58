"""Small source files written by the tests: Fashion-MNIST IDX folders, Ta-Feng CSVs, S3-Rec sequences."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.sources.images import IMAGES_FILE, LABELS_FILE


def write_fashion_mnist(folder: Path, per_class: int = 3, classes: int = 10) -> np.ndarray:
    """A Fashion-MNIST-shaped folder; image i is filled with the value i so it can be recognised."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(classes, dtype=np.uint8), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    images[:] = np.arange(len(labels), dtype=np.uint8)[:, None, None]
    with gzip.open(folder / IMAGES_FILE, "wb") as out:
        out.write(struct.pack(">iiii", 2051, len(labels), 28, 28) + images.tobytes())
    with gzip.open(folder / LABELS_FILE, "wb") as out:
        out.write(struct.pack(">ii", 2049, len(labels)) + labels.tobytes())
    return labels


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("users", "items", "item_images", "events", "campaigns")
        }

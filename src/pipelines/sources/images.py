"""Item pictures: a real Fashion-MNIST image of the item's category, as 28x28 grayscale PNG bytes.

Read from the IDX files of the Fashion-MNIST folder (Settings.fashion_mnist_path()); without that
folder the store simply has no item_images rows. Each item gets a different training image of its
class while the class has enough of them (6,000 each), chosen deterministically by the store's seed.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.compute import derive_seed
from pipelines.errors import SourceFormatError

IMAGES_FILE = "train-images-idx3-ubyte.gz"
LABELS_FILE = "train-labels-idx1-ubyte.gz"
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def read_idx(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training images [n, 28, 28] uint8 and labels [n] uint8 of a Fashion-MNIST folder."""
    images_path, labels_path = folder / IMAGES_FILE, folder / LABELS_FILE
    with gzip.open(images_path) as images_file, gzip.open(labels_path) as labels_file:
        raw_images, raw_labels = images_file.read(), labels_file.read()
    header = np.frombuffer(raw_images, ">i4", count=4) if len(raw_images) >= 16 else None
    if header is None or header[0] != IMAGE_MAGIC or len(raw_images) != 16 + int(np.prod(header[1:])):
        raise SourceFormatError(images_path, None, "not an IDX image file (magic 2051, n x rows x cols bytes)")
    label_header = np.frombuffer(raw_labels, ">i4", count=2) if len(raw_labels) >= 8 else None
    if label_header is None or label_header[0] != LABEL_MAGIC or label_header[1] != header[1]:
        raise SourceFormatError(labels_path, None, f"not an IDX label file for {header[1]} images")
    images = np.frombuffer(raw_images, np.uint8, offset=16).reshape(-1, int(header[2]), int(header[3]))  # [n, 28, 28]
    return images, np.frombuffer(raw_labels, np.uint8, offset=8)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")  # uint8 [h, w] -> 8-bit grayscale
    return buffer.getvalue()


def item_images_frame(item_category: np.ndarray, folder: Path, seed: int) -> pd.DataFrame:
    """item_images rows for items whose category (a Fashion-MNIST label) is `item_category[i]`.

    Items whose class has no image in the folder get no row.
    """
    images, labels = read_idx(folder)
    rng = np.random.default_rng(derive_seed("store-images", seed))
    chosen = np.full(len(item_category), -1, dtype=np.int64)
    for label in np.unique(item_category):
        items = np.flatnonzero(item_category == label)
        pool = np.flatnonzero(labels == label)
        if len(pool):
            chosen[items] = rng.choice(pool, size=len(items), replace=len(items) > len(pool))
    has = np.flatnonzero(chosen >= 0)
    return pd.DataFrame(
        {
            "item_id": (has + 1).astype(np.int64),
            "image": [png_bytes(images[i]) for i in chosen[has]],
            "width": images.shape[2],
            "height": images.shape[1],
            "source": [f"fashion-mnist:train:{i}" for i in chosen[has]],
        }
    )

"""Product images from the warehouse (`item_images` joined to `items.category`) as training tensors.

The images are dimension data without a business date, so every run reads all of them; their content
fingerprint keys the cached evaluation classifier and the resumable checkpoint, so a changed catalogue
is never evaluated with a classifier or a checkpoint made for another one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from sqlalchemy.engine import Engine

from pipelines.compute import derive_seed
from pipelines.errors import DataError

log = logging.getLogger(__name__)

QUERY = """SELECT img.item_id, it.category, img.image
           FROM item_images AS img JOIN items AS it USING (item_id)
           ORDER BY img.item_id"""


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # [n, channels, size, size], float in [-1, 1]
    labels: torch.Tensor  # [n], int64 index into classes
    classes: tuple[str, ...]  # sorted category names
    item_ids: tuple[int, ...]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: np.ndarray) -> ImageSet:
        index = torch.from_numpy(np.flatnonzero(mask))
        ids = tuple(self.item_ids[i] for i in index.tolist())
        return ImageSet(self.images[index], self.labels[index], self.classes, ids, self.fingerprint)


def decode_png(data: bytes, *, size: int, channels: int) -> np.ndarray:
    """PNG bytes -> uint8 [channels, size, size]; resized with Lanczos when the store's size differs."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)  # [c, h, w]


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [n, c, h, w] -> float [-1, 1], the generator's tanh range."""
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)


def load_item_images(engine: Engine, *, size: int, channels: int) -> ImageSet:
    """Every product image with its category. Raises DataError naming the items that cannot be decoded."""
    started = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(QUERY).fetchall()
    if not rows:
        raise DataError("item_images is empty: the ad-creative GAN needs product images to train on")
    classes = tuple(sorted({row.category for row in rows}))
    class_index = {name: i for i, name in enumerate(classes)}
    pixels = np.empty((len(rows), channels, size, size), dtype=np.uint8)
    digest = hashlib.sha256(f"{size}x{size}x{channels}".encode())
    bad: list[int] = []
    for i, row in enumerate(rows):
        data = bytes(row.image)
        try:
            pixels[i] = decode_png(data, size=size, channels=channels)
        except (UnidentifiedImageError, OSError, ValueError):
            bad.append(row.item_id)
            continue
        digest.update(f"{row.item_id}:{row.category}:".encode() + hashlib.sha256(data).digest())
    if bad:
        raise DataError(f"item_images: {len(bad)} image(s) are not decodable PNGs, item_id {bad[:10]}")
    labels = torch.tensor([class_index[row.category] for row in rows], dtype=torch.int64)
    seconds = time.perf_counter() - started
    log.info(
        "read %d product images in %d categories in %.1f s (%.0f images/s)",
        len(rows),
        len(classes),
        seconds,
        len(rows) / max(seconds, 1e-9),
    )
    ids = tuple(int(row.item_id) for row in rows)
    return ImageSet(to_tensor(pixels), labels, classes, ids, digest.hexdigest())


def holdout_mask(item_ids: tuple[int, ...], fraction: float) -> np.ndarray:
    """Held-out items chosen by a stable hash of the item id: the same items whatever else changes."""
    buckets = np.array([derive_seed("creative_gan", "holdout", i) % 10_000 for i in item_ids])
    return buckets < int(fraction * 10_000)

"""Source tables from a synthetic fashion store or from real datasets (Ta-Feng, Amazon S3-Rec sequences),
and delivery logs from the simulated store or the Open Bandit sample.

Importing this package is cheap (no numpy or pandas): the loaders are imported on first use, so a DAG
file may import `pipelines.sources` at parse time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipelines.sources.config import TINY_STORE, StoreConfig
from pipelines.sources.fashion import CATEGORIES, plausible_price_range

if TYPE_CHECKING:
    from pipelines.sources.amazon import load_amazon
    from pipelines.sources.load import LoadSummary, load_open_bandit
    from pipelines.sources.store import load_synthetic_store
    from pipelines.sources.tafeng import load_tafeng

_LAZY = {
    "LoadSummary": "pipelines.sources.load",
    "load_synthetic_store": "pipelines.sources.store",
    "load_tafeng": "pipelines.sources.tafeng",
    "load_amazon": "pipelines.sources.amazon",
    "load_open_bandit": "pipelines.sources.load",
}

__all__ = [
    "CATEGORIES",
    "TINY_STORE",
    "LoadSummary",
    "StoreConfig",
    "load_amazon",
    "load_open_bandit",
    "load_synthetic_store",
    "load_tafeng",
    "plausible_price_range",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Figures (training curves, the Effects page): one headless way to open a row of panels and write a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO


def panels(count: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure with `count` side-by-side axes, on the Agg backend (tasks and tests have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt.subplots(1, count, figsize=figsize)


def png(fig: Any, target: Path | BinaryIO, title: str, dpi: int = 100) -> None:
    """Title, lay out and write the figure as PNG to a file or a buffer (the web pages), then free it."""
    from matplotlib import pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(target, dpi=dpi, format="png")
    plt.close(fig)


def save(fig: Any, path: Path, title: str, dpi: int = 100) -> Path:
    """Title, lay out and write the figure to `path`, then free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    png(fig, path, title, dpi)
    return path

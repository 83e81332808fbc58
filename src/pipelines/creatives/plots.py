"""Training curves as a PNG beside the artifacts: losses (the class head's too), discriminator outputs, probes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot_training_curves(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path | None:
    """Write the curves; None when there is nothing to plot (no training step was logged)."""
    if not history.get("step"):
        return None
    from pipelines import plots

    probes = sorted(k for k in history if k.startswith("probe_") and k != "probe_step")
    panels = 2 + (1 if probes else 0)
    fig, axes = plots.panels(panels, figsize=(5 * panels, 3.6))
    steps = history["step"]
    axes[0].plot(steps, history["d_loss"], label="D loss")
    axes[0].plot(steps, history["g_loss"], label="G loss")
    for key, who in (("class_real", "real"), ("class_fake", "fake")):
        if key in history:  # the auxiliary class head's cross-entropy, when the run has one
            axes[0].plot(steps, history[key], linestyle="--", label=f"class CE ({who})")
    axes[0].set_xlabel("step")
    axes[0].legend()
    axes[1].plot(steps, history["d_real"], label="D(real)")
    axes[1].plot(steps, history["d_fake"], label="D(fake)")
    axes[1].set_xlabel("step")
    axes[1].legend()
    if probes:
        for key in probes:
            axes[2].plot(history["probe_step"], history[key], marker="o", label=key.removeprefix("probe_"))
        axes[2].set_xlabel("step")
        axes[2].legend()
    return plots.save(fig, path, title, dpi=90)

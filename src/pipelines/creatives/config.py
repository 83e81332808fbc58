"""Every knob of the ad-creative task, with production defaults (the demo shrinks them in pipelines.demo).

The measurements behind the model and training defaults are in docs/model-notes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.errors import ConfigError

MODEL_NAME = "creative_gan"


@dataclass(frozen=True)
class CreativesConfig:
    """Defaults are the configuration benchmarked on Fashion-MNIST (docs/benchmarks.md)."""

    # Model (rebuilt from the checkpoint's copy of these; changing them forces a cold start).
    image_size: int = 28
    image_channels: int = 1
    z_dim: int = 64
    # A 96-channel generator and a 32-channel discriminator: the widths that led per step and per minute.
    g_channels: int = 96
    d_channels: int = 32
    # The discriminator sees the spread of each class's images in the batch (gan.MinibatchStddev), so a
    # generator that draws one prototype per category whatever its noise is caught.
    minibatch_stddev: bool = True
    # GAN training: steps per run on top of the warm start; an interrupted run resumes from its checkpoint.
    train_steps: int = 3000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    # Cap of the generator EMA's decay; below it the decay at step s is (1 + s) / (10 + s), an average over
    # about the last ninth of the run so far, which beat longer and shorter windows.
    ema_decay: float = 0.999
    # Forward passes of GAN training in bfloat16 (torch.autocast; weights, optimizer state and EMA stay
    # float32): "bf16", "fp32", or "auto" = bf16 where the device computes it natively (compute.native_bf16),
    # which is about a third faster per step at the same quality per minute.
    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"
    diffaugment: str = "translation,cutout"
    # Weight of balanced consistency regularisation (creatives.consistency), 0 = off: 1 cut the Frechet
    # distance on every seed measured, for about a quarter more time per step.
    consistency_weight: float = 1.0
    # Weight of the auxiliary class loss (AC-GAN): the discriminator's class head learns the category of
    # real images and the generator is trained to make its products read as theirs. 0 = no class head.
    # 0.1 made products more recognisable without narrowing the categories, as 0.5 did.
    class_loss_weight: float = 0.1
    checkpoint_every: int = 500
    log_every: int = 250
    warm_start: bool = True
    # Evaluation: a held-out share of the real images, never seen by the classifier or the GAN.
    holdout_fraction: float = 0.15
    eval_samples: int = 5000  # cap on reference/generated images per evaluation
    classifier_epochs: int = 2
    classifier_batch_size: int = 128
    classifier_lr: float = 1e-3
    classifier_channels: int = 32
    # Champion/challenger: the gate is hard; promotion compares Frechet distance / real-vs-real floor.
    min_conditional_accuracy: float = 0.85
    # Diversity gate: recall (Kynkaanniemi) of generated vs held-out real features. Conditional accuracy
    # alone passes a generator that draws one prototype per category; it must not ship near-identical banners.
    min_recall: float = 0.1
    promotion_tolerance: float = 0.1
    # Creatives.
    categories_per_segment: int = 2
    candidates_per_category: int = 32
    top_k: int = 3
    banner_sizes: tuple[str, ...] = ("300x250", "728x90")
    call_to_action: str = "Shop now"
    confidence_weight: float = 0.6
    realism_weight: float = 0.4
    diversity_weight: float = 0.3
    affinity_window_days: int = 30

    def __post_init__(self) -> None:
        positive = ("image_size", "image_channels", "z_dim", "g_channels", "d_channels", "batch_size", "top_k")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"CreativesConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.train_steps < 0:
            raise ConfigError(f"CreativesConfig.train_steps must be >= 0, got {self.train_steps}")
        if self.image_channels not in (1, 3):
            raise ConfigError(f"CreativesConfig.image_channels must be 1 or 3, got {self.image_channels}")
        for name in ("consistency_weight", "class_loss_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"CreativesConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.holdout_fraction < 0.5:
            raise ConfigError(f"CreativesConfig.holdout_fraction must be in (0, 0.5), got {self.holdout_fraction}")
        for name in ("min_conditional_accuracy", "min_recall"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"CreativesConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.candidates_per_category < self.top_k:
            raise ConfigError("CreativesConfig.candidates_per_category must be at least top_k")
        for size in self.banner_sizes:
            banner_size(size)

    @property
    def gate(self) -> dict[str, float]:
        return {"conditional_accuracy": self.min_conditional_accuracy, "recall": self.min_recall}


def banner_size(text: str) -> tuple[int, int]:
    """'300x250' -> (300, 250), with a clear error for anything else."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"banner size must look like '300x250', got {text!r}") from None
    if not (50 <= width <= 2000 and 30 <= height <= 2000):
        raise ConfigError(f"banner size {text!r} is outside 50..2000 x 30..2000 pixels")
    return width, height

"""The recommender's settings: one frozen dataclass with production defaults.

Every knob the DAG's Params or the demo may turn is a field here, so `pipelines.config.apply_overrides`
is the only way in. Defaults are the ones that beat the Beauty baselines (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MODEL_NAME = "sasrec"


def _default_event_weights() -> dict[str, float]:
    return {"purchase": 1.0, "cart": 1.0}


@dataclass(frozen=True)
class RecsConfig:
    """Sequences, model, training, promotion and inference settings of `refresh_recommendations`."""

    # Sequences: which events make a user's history and how much each one counts as a training target.
    event_weights: dict[str, float] = field(default_factory=_default_event_weights)
    history_days: int | None = None  # None: every event up to the business date
    max_len: int = 50  # the most recent items a user's sequence keeps

    # Model (SASRec family).
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.3
    norm_first: bool = True  # pre-LN blocks (stable at high learning rates); False: post-LN as in SASRec
    repeat_bias: bool = True  # learn how likely an item already in the history is to come next (model.py)

    # Training: softmax cross-entropy over the catalogue, Adam.
    batch_size: int = 128
    learning_rate: float = 4e-3
    max_epochs: int = 200
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    max_train_seconds: float | None = None  # wall-clock cap on training; None: epochs and patience decide
    refit: bool = True  # after early stopping, retrain on every event for the best epoch count (serves fresher)
    warm_start: bool = False  # start from the champion's weights (new items get fresh rows)
    min_train_users: int = 10  # fewer evaluable users than this: no training, the champion serves
    # Data-parallel training processes (DDP, pipelines.distributed): one per GPU, or gloo processes on a CPU.
    train_processes: int = 1

    # Champion/challenger on validation NDCG@10, both models scored on this run's split.
    promotion_tolerance: float = 0.002

    # Inference.
    top_k: int = 20
    exclude_event_types: tuple[str, ...] = ("purchase",)  # items the user already did this to are not recommended
    active_days: int | None = None  # None: every registered user; else users with an event in the last N days
    popularity_days: int = 30  # window of the popularity fallback for users without history
    infer_batch_users: int = 4096

    device: Literal["settings", "cpu", "cuda"] = "settings"  # "settings": Settings.device decides

    def __post_init__(self) -> None:
        from pipelines.errors import ConfigError

        if not self.event_weights or any(w <= 0 for w in self.event_weights.values()):
            raise ConfigError(f"RecsConfig.event_weights needs positive weights, got {self.event_weights}")
        if self.hidden % self.heads:
            raise ConfigError(f"RecsConfig.hidden={self.hidden} must be divisible by heads={self.heads}")
        for name in (
            "max_len",
            "hidden",
            "blocks",
            "heads",
            "batch_size",
            "max_epochs",
            "top_k",
            "infer_batch_users",
            "train_processes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"RecsConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"RecsConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.patience < 1 or self.promotion_tolerance < 0:
            raise ConfigError("RecsConfig.promotion_tolerance must be >= 0 and patience >= 1")

"""The one config of the user-profile task: production defaults, overridden only via `apply_overrides`.

Every knob the demo or a deployment turns is a field here, so Airflow Params reach it through one door.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import ConfigError

MODEL_NAME = "user_profile_vae"
# What every evaluation reports (pipelines.ranking names); the promotion metric is one of them.
METRICS = ("recall@20", "recall@50", "ndcg@100")


@dataclass(frozen=True)
class ProfileConfig:
    """User-profile VAE: input weighting, Mult-VAE size and training, evaluation, segments, promotion."""

    # Input: users x items, each event weighted by type and halved every `recency_half_life_days`.
    history_days: int = 365
    weight_view: float = 1.0
    weight_cart: float = 2.0
    weight_purchase: float = 4.0
    recency_half_life_days: float = 30.0
    # Mult-VAE (Liang et al. 2018), with the settings that won on the validation users of Amazon Beauty and
    # Ta-Feng: a linear decoder, Adam at 3e-3 and beta capped at 0.5 (docs/model-notes.md).
    hidden_dim: int = 600
    latent_dim: int = 200
    decoder_hidden: bool = False
    input_dropout: float = 0.5
    epochs: int = 100
    batch_size: int = 500
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    # The learning rate stays at `learning_rate` for this share of all updates, then falls to 0 along a half
    # cosine (0: from the first update; 1: constant). Constant: a decay lost on small stores (model-notes).
    lr_decay_start: float = 1.0
    beta_cap: float = 0.5
    anneal_fraction: float = 0.8  # share of all updates over which beta grows linearly from 0 to beta_cap
    max_train_seconds: float | None = None  # stop after the epoch that crosses it (bounds a task's run time)
    # Data-parallel training processes (DDP, pipelines.distributed): one per GPU, or gloo processes on a CPU.
    train_processes: int = 1
    # Differentially private training (DP-SGD with Opacus, pipelines.profiles.privacy), off while dp_epsilon
    # is None: each training user's gradient is clipped to dp_max_grad_norm and Gaussian noise is calibrated
    # so that `epochs` of training spend at most (dp_epsilon, dp_delta); delta should stay below 1 / users.
    # DP-SGD wants larger batches than plain training (batch_size 2000, learning_rate 1e-3 did better on
    # Beauty than the defaults: docs/benchmarks.md).
    dp_epsilon: float | None = None
    dp_delta: float = 1e-6
    dp_max_grad_norm: float = 1.0
    # Evaluation (strong generalisation): a stable hash of user_id picks the held-out users, so a user is
    # held out on every date and the champion never trained on today's held-out users.
    heldout_fraction: float = 0.1
    foldin_fraction: float = 0.8
    eval_min_items: int = 5
    # EASE's L2 weight for the comparator: the best on Beauty's validation users (docs/model-notes.md).
    ease_lambda: float = 200.0
    ease_max_items: int = 20_000  # EASE inverts an items x items matrix: beyond this, skipped and reported
    # Outputs.
    segments: int = 8
    kmeans_iterations: int = 50
    top_categories: int = 3
    psi_bins: int = 10
    psi_sample: int = 20_000
    encode_batch_size: int = 4096
    # Champion/challenger (the rule the recommender uses too): the candidate is promoted when its metric on
    # today's split is not worse than the champion's, re-scored on the same split, by more than the tolerance.
    promotion_metric: str = "ndcg@100"
    promotion_tolerance: float = 0.002

    def __post_init__(self) -> None:
        checks = {
            "history_days": self.history_days >= 1,
            "hidden_dim": self.hidden_dim >= 1,
            "latent_dim": self.latent_dim >= 1,
            "input_dropout": 0.0 <= self.input_dropout < 1.0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "beta_cap": self.beta_cap >= 0,
            "anneal_fraction": 0.0 < self.anneal_fraction <= 1.0,
            "lr_decay_start": 0.0 <= self.lr_decay_start <= 1.0,
            "heldout_fraction": 0.0 < self.heldout_fraction < 1.0,
            "foldin_fraction": 0.0 < self.foldin_fraction < 1.0,
            "eval_min_items": self.eval_min_items >= 2,
            "ease_lambda": self.ease_lambda > 0,
            "segments": self.segments >= 1,
            "kmeans_iterations": self.kmeans_iterations >= 1,
            "top_categories": self.top_categories >= 1,
            "psi_bins": self.psi_bins >= 2,
            "recency_half_life_days": self.recency_half_life_days > 0,
            "max_train_seconds": self.max_train_seconds is None or self.max_train_seconds > 0,
            "promotion_tolerance": self.promotion_tolerance >= 0,
            "train_processes": self.train_processes >= 1,
            "dp_epsilon": self.dp_epsilon is None or self.dp_epsilon > 0,
            "dp_delta": 0.0 < self.dp_delta < 1.0,
            "dp_max_grad_norm": self.dp_max_grad_norm > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"ProfileConfig out of range: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        if self.promotion_metric not in METRICS:
            raise ConfigError(f"ProfileConfig.promotion_metric must be one of {METRICS}, got {self.promotion_metric!r}")
        if self.dp_epsilon is not None and self.train_processes > 1:
            raise ConfigError(
                "ProfileConfig: DP-SGD (dp_epsilon) trains in one process; set train_processes=1 or dp_epsilon=None"
            )
        if min(self.weight_view, self.weight_cart, self.weight_purchase) < 0:
            raise ConfigError("ProfileConfig event weights must be >= 0")

    @property
    def event_weights(self) -> dict[str, float]:
        return {"view": self.weight_view, "cart": self.weight_cart, "purchase": self.weight_purchase}

"""Training and inference for the Mult-VAE, fed CSR row batches so no step densifies the user x item matrix.

The trainer depends only on `MultVAE.loss` and `MultVAE.encode`/`forward`; evaluation and profile
writing go through `infer` and `score_batches`, so memory is one batch of logits plus the embeddings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from pipelines import distributed
from pipelines.errors import ConfigError
from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.model import MultVAE, SparseBatch, VAEConfig
from pipelines.progress import Progress

log = logging.getLogger(__name__)


def to_batch(rows: sp.csr_matrix) -> SparseBatch:
    """A CSR slice as the tensors EmbeddingBag and the likelihood need (no dense [batch, n_items])."""
    indptr = rows.indptr.astype(np.int64)
    lengths = np.diff(indptr)
    return SparseBatch(
        indices=torch.from_numpy(rows.indices.astype(np.int64)),
        offsets=torch.from_numpy(indptr[:-1].copy()),
        values=torch.from_numpy(rows.data.astype(np.float32)),
        rows=torch.from_numpy(np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)),
    )


def iter_batches(matrix: sp.csr_matrix, batch_size: int, order: np.ndarray | None = None) -> Iterator[SparseBatch]:
    """Row batches of `matrix` in `order` (default: row order); each slice copies only its own rows."""
    order = np.arange(matrix.shape[0]) if order is None else order
    for start in range(0, len(order), batch_size):
        yield to_batch(matrix[order[start : start + batch_size]])


def beta_at(step: int, total_steps: int, config: ProfileConfig) -> float:
    """KL weight: linear from 0 to `beta_cap` over `anneal_fraction` of all updates, then held."""
    anneal_steps = max(1.0, config.anneal_fraction * total_steps)
    return min(config.beta_cap, config.beta_cap * step / anneal_steps)


def learning_rate_factor(step: int, total_steps: int, decay_start: float) -> float:
    """Share of the base rate at an update: 1 until `decay_start` of all updates, then a half cosine to 0.

    With a constant rate the last epochs' scores swing around their level; a decay settles them, at the
    cost of less learning overall, which only long runs can spare (ProfileConfig.lr_decay_start).
    """
    begin = decay_start * total_steps
    if step < begin or decay_start >= 1.0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - begin) / max(1.0, total_steps - begin))))


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    nll: float
    kl: float
    beta: float
    learning_rate: float  # at the end of the epoch
    seconds: float
    epsilon: float | None = None  # DP-SGD: the epsilon spent so far, where it was read (logged and last epochs)


def train(
    matrix: sp.csr_matrix,
    config: ProfileConfig,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[int, MultVAE], None] | None = None,
) -> tuple[MultVAE, list[EpochStats]]:
    """Train a Mult-VAE on the rows of `matrix`; returns the model (in eval mode) and per-epoch stats.

    `on_epoch(epoch, model)` runs after each epoch (model in eval mode, back to training after), e.g. for
    validation-based model selection in a benchmark; it runs in this process, so only with one training
    process. With `train_processes` > 1 each process (`pipelines.distributed`) takes its slice of every
    batch and DDP averages the gradients; with `dp_epsilon` set, training is DP-SGD
    (`pipelines.profiles.privacy`) and the last epoch's stats carry the epsilon spent.
    """
    if matrix.shape[0] == 0 or matrix.nnz == 0:
        raise ValueError("cannot train the profile VAE on an empty interaction matrix")
    if on_epoch is not None and config.train_processes > 1:
        raise ConfigError("on_epoch needs train_processes=1: it runs in the calling process")
    return distributed.run(config.train_processes, device, _train, matrix, config, seed, on_epoch)


def _train(
    group: distributed.Group,
    matrix: sp.csr_matrix,
    config: ProfileConfig,
    seed: int,
    on_epoch: Callable[[int, MultVAE], None] | None,
) -> tuple[MultVAE, list[EpochStats]]:
    device = group.device
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MultVAE(VAEConfig.from_task_config(config, matrix.shape[1])).to(device)
    group.reseed(seed)
    # The fused kernel makes the update of the two [n_items, hidden] matrices several times cheaper on CPU.
    optimiser = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    n_users = matrix.shape[0]
    steps_per_epoch = -(-n_users // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: learning_rate_factor(step, total_steps, config.lr_decay_start)
    )
    private = None
    if config.dp_epsilon is not None:
        from pipelines.profiles.privacy import make_private

        private = make_private(model, optimiser, matrix, config, seed)
    loss_fn = group.loss_fn(model)

    def update(batch: SparseBatch, beta: float, share: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if private is not None:
            return private.step(batch, beta)
        loss, nll, kl = loss_fn(batch, beta)
        optimiser.zero_grad(set_to_none=True)
        (loss * share if group.distributed else loss).backward()
        optimiser.step()
        return loss, nll, kl

    def batches() -> Iterator[tuple[SparseBatch, float, float]]:
        """(batch, its rows counted in the epoch's means, its loss share), this rank's part of each batch."""
        if private is not None:
            for batch in private.batches():
                yield batch, float(batch.size), 1.0
            return
        order = rng.permutation(n_users)
        for start in range(0, n_users, config.batch_size):
            rows, present = group.slice(order[start : start + config.batch_size])
            yield to_batch(matrix[rows]), len(rows) * present, group.share(len(rows) * present)

    log_every = max(1, config.epochs // 10)
    history: list[EpochStats] = []
    step = 0
    model.train()
    train_started = time.perf_counter()
    progress = Progress(log, "VAE training", total_steps, "batches")
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        sums = np.zeros(4)  # loss, nll, kl (summed over users), users
        beta = 0.0
        for batch, counted, share in batches():
            beta = beta_at(step, total_steps, config)
            loss, nll, kl = update(batch.to(device), beta, share)
            schedule.step()
            sums += np.array([loss.item(), nll.item(), kl.item(), 1.0]) * counted
            step += 1
            progress.advance(note=f"epoch {epoch}/{config.epochs}")
        seconds = time.perf_counter() - started
        sums = group.all_sum(sums)
        loss_mean, nll_mean, kl_mean = sums[:3] / max(sums[3], 1.0)
        lr = optimiser.param_groups[0]["lr"]
        logged = epoch % log_every == 0 or epoch == config.epochs
        epsilon = private.epsilon() if private is not None and logged else None
        history.append(EpochStats(epoch, loss_mean, nll_mean, kl_mean, beta, lr, seconds, epsilon))
        if logged:
            log.info(
                "epoch %d/%d: loss %.3f (nll %.3f, kl %.3f, beta %.3f, lr %.2g%s), %d users in %.2f s (%.0f users/s)",
                epoch, config.epochs, loss_mean, nll_mean, kl_mean, beta, lr,
                "" if epsilon is None else f", epsilon spent {epsilon:.3g}", n_users, seconds, n_users / seconds,
            )  # fmt: skip
        if on_epoch is not None:
            model.eval()
            on_epoch(epoch, model)
            model.train()
        if _out_of_time(group, train_started, config):
            if private is not None and epsilon is None:
                history[-1] = dataclasses.replace(history[-1], epsilon=private.epsilon())
            log.warning("stopping after epoch %d of %d: max_train_seconds=%s reached", epoch, config.epochs,
                        config.max_train_seconds)  # fmt: skip
            break
    if private is not None:
        model = private.close()
    model.eval()
    return model, history


def _out_of_time(group: distributed.Group, started: float, config: ProfileConfig) -> bool:
    """Whether `max_train_seconds` has passed, by rank 0's clock (every rank must stop at the same epoch)."""
    limit = config.max_train_seconds
    return limit is not None and group.from_rank0(time.perf_counter() - started > limit)


@torch.no_grad()
def infer(
    model: MultVAE,
    matrix: sp.csr_matrix,
    device: torch.device,
    batch_size: int,
    category_onehot: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means [n_users, latent] and, with a one-hot item->category matrix, each user's predicted
    probability mass per category [n_users, n_categories] (the model's interests, not just the history)."""
    model.eval()
    embeddings = np.empty((matrix.shape[0], model.config.latent_dim), dtype=np.float32)
    affinity = None
    onehot = None
    if category_onehot is not None:
        affinity = np.empty((matrix.shape[0], category_onehot.shape[1]), dtype=np.float32)
        onehot = torch.from_numpy(category_onehot.toarray().astype(np.float32)).to(
            device
        )  # [n_items, n_categories], small
    for start in range(0, matrix.shape[0], batch_size):
        batch = to_batch(matrix[start : start + batch_size]).to(device)
        mu, _ = model.encode(batch)
        embeddings[start : start + batch.size] = mu.cpu().numpy()
        if onehot is not None and affinity is not None:
            probs = torch.softmax(model.decoder(mu), dim=-1)  # [batch, n_items]
            affinity[start : start + batch.size] = (probs @ onehot).cpu().numpy()
    return embeddings, affinity


@torch.no_grad()
def score_rows(model: MultVAE, rows: sp.csr_matrix, device: torch.device) -> np.ndarray:
    """Item scores (logits) [rows, n_items] for a small block of users, e.g. evaluation fold-ins."""
    model.eval()
    logits, _, _ = model(to_batch(rows).to(device))
    return logits.cpu().numpy()


def plot_history(history: list[EpochStats], path: Path, title: str) -> Path:
    """Loss curve PNG: negative ELBO, its two terms and the annealed beta, per epoch."""
    from pipelines import plots

    epochs = [h.epoch for h in history]
    fig, (left, right) = plots.panels(2, figsize=(10, 4))
    left.plot(epochs, [h.loss for h in history], label="loss (nll + beta kl)")
    left.plot(epochs, [h.nll for h in history], label="multinomial nll")
    left.set_xlabel("epoch")
    left.set_ylabel("per user")
    left.legend()
    right.plot(epochs, [h.kl for h in history], label="kl", color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("kl")
    twin = right.twinx()
    twin.plot(epochs, [h.beta for h in history], label="beta", color="tab:red", linestyle="--")
    twin.set_ylabel("beta")
    return plots.save(fig, path, title)

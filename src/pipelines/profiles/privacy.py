"""Differentially private training of the Mult-VAE: DP-SGD (Abadi et al., CCS 2016) with Opacus.

The privacy unit is a training user (one row of the matrix, their whole history): each batch is a Poisson
sample of users, each user's gradient is clipped to `dp_max_grad_norm`, and Gaussian noise calibrated so
that the configured epochs spend at most (`dp_epsilon`, `dp_delta`) is added to their sum. Opacus's
accountant (PRV) reports what was spent; nothing here counts privacy by hand. Ghost clipping (Opacus's
`grad_sample_mode="ghost"`) finds each user's gradient norm without materialising per-user gradients,
which for the first layer alone would be [users, items, hidden] floats.

What it covers: the weights, and so everything computed from them alone. It does not make a user's own
profile private from that user's history (the embedding is computed from it), nor the comparators
(popularity, EASE) or the held-out evaluation users' scores.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.model import MultVAE, SparseBatch, WeightedBag

log = logging.getLogger(__name__)

_REGISTERED = False


@dataclass
class PrivateTraining:
    """The model's Opacus wrapper, its DP optimizer, the Poisson batches and the privacy engine."""

    model: MultVAE
    module: Any
    optimizer: Any
    loader: Any
    engine: Any
    delta: float

    def batches(self) -> Iterator[SparseBatch]:
        """One epoch of Poisson-sampled batches (an empty draw, probability about exp(-batch_size), is
        skipped: a step on no users would be noise only)."""
        for batch in self.loader:
            if isinstance(batch, SparseBatch):
                yield batch

    def step(self, batch: SparseBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DP-SGD update on `batch`; returns the batch's mean loss, NLL and KL."""
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        losses, nll, kl = self.model.user_losses(batch, beta)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # Opacus's hooks read the first layer's output gradient; its inputs never need one, as torch notes.
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            # Two backward passes: per-user norms, then the loss reweighted by each user's clipping factor.
            DPTensorFastGradientClipping(self.module, self.optimizer, losses, "mean").backward()
        self.optimizer.step()
        return losses.mean(), nll.mean(), kl.mean()

    def epsilon(self) -> float:
        """The epsilon spent so far at `delta`, by Opacus's accountant."""
        return float(self.engine.get_epsilon(self.delta))

    def close(self) -> MultVAE:
        """The plain model, without Opacus's hooks."""
        return self.module.to_standard_module()


def make_private(
    model: MultVAE, optimizer: torch.optim.Optimizer, matrix: sp.csr_matrix, config: ProfileConfig, seed: int
) -> PrivateTraining:
    """Wrap `model` and `optimizer` for DP-SGD over the rows of `matrix` for `config.epochs` epochs."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from pipelines.profiles.training import to_batch

    assert config.dp_epsilon is not None
    _register_norm_sampler()

    def collate(items: list[tuple[torch.Tensor]]) -> SparseBatch:
        return to_batch(matrix[np.array([int(row) for (row,) in items], dtype=np.int64)])

    loader = DataLoader(TensorDataset(torch.arange(matrix.shape[0])), batch_size=config.batch_size, collate_fn=collate)
    # Seeded sampling and noise keep a rerun of a date reproducible, which Opacus's secure_mode (a
    # cryptographic generator) would not: a deliberate choice (ADR 0015), so its warning is not repeated.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine()
    generator = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        # Calibrating the noise scans RDP orders on the way; the PRV accountant then sets the epsilon.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha", category=UserWarning)
        module, dp_optimizer, _, dp_loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=config.dp_epsilon,
            target_delta=config.dp_delta,
            epochs=config.epochs,
            max_grad_norm=config.dp_max_grad_norm,
            grad_sample_mode="ghost",
            noise_generator=generator,
        )
    log.info(
        "DP-SGD: epsilon %.3g, delta %.3g over %d epochs; noise multiplier %.3f, clipping %.3g, sample rate %.4f",
        config.dp_epsilon, config.dp_delta, config.epochs, dp_optimizer.noise_multiplier, config.dp_max_grad_norm,
        1 / len(dp_loader),
    )  # fmt: skip
    return PrivateTraining(model, module, dp_optimizer, dp_loader, engine, config.dp_delta)


def _register_norm_sampler() -> None:
    """Teach Opacus each user's gradient norm in `WeightedBag` (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from opacus.grad_sample import register_norm_sampler

    register_norm_sampler(WeightedBag)(bag_norm_sample)
    _REGISTERED = True


def bag_norm_sample(
    layer: WeightedBag, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[torch.nn.Parameter, torch.Tensor]:
    """Each row's gradient norm for the bag's weight and bias, without the [rows, items, hidden] gradients.

    Row b's output is sum_j v_bj E[i_bj] + bias, so its weight gradient has rows v_bj g_b at items i_bj
    (g_b = the output's gradient): its norm is |g_b| sqrt(sum_i (sum of v at item i)^2); the bias's is |g_b|.
    """
    indices, values, offsets = activations
    n_rows = backprops.shape[0]
    lengths = torch.diff(offsets, append=torch.tensor([indices.shape[0]], device=offsets.device))
    rows = torch.repeat_interleave(torch.arange(n_rows, device=offsets.device), lengths)  # [nnz]
    # A row that names an item twice adds its weights up before squaring.
    keys, where = torch.unique(rows * layer.weight.shape[0] + indices, return_inverse=True)
    summed = torch.zeros(keys.shape[0], dtype=backprops.dtype, device=backprops.device)
    summed.index_add_(0, where, values.to(backprops.dtype))
    squares = torch.zeros(n_rows, dtype=backprops.dtype, device=backprops.device)
    squares.index_add_(0, keys // layer.weight.shape[0], summed**2)
    grad_norm = backprops.norm(dim=1)  # [rows]
    return {layer.weight: grad_norm * squares.sqrt(), layer.bias: grad_norm}

"""Mult-VAE: variational autoencoder with a multinomial likelihood for collaborative filtering.

Liang, Krishnan, Hoffman, Jebara, "Variational Autoencoders for Collaborative Filtering", WWW 2018:
L2-normalised input with dropout, tanh MLP encoder to a diagonal Gaussian, tanh MLP decoder to item
logits, multinomial log-likelihood, KL weight beta annealed from 0 to a cap.

Deliberate deviations: the first encoder layer is an embedding bag (sum of weighted item vectors)
fed straight from CSR rows, which is the same linear map as the paper's dense layer but never builds the
[batch, n_items] input. Only the decoder's logits are dense, one batch at a time. With
`decoder_hidden=False` the decoder is one linear map [latent -> items] (as in RecVAE, Shenbin et al.,
WSDM 2020): the output layer, most of an update's flops, is then latent- rather than hidden-wide, which
halves an epoch's cost at the same quality (docs/model-notes.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from pipelines.profiles.config import ProfileConfig


@dataclass(frozen=True)
class VAEConfig:
    """What rebuilds the network: saved in every checkpoint.

    New models come from `from_task_config`: ProfileConfig holds the one set of defaults.
    """

    n_items: int
    hidden_dim: int
    latent_dim: int
    input_dropout: float
    # [I-h-l-h-I] as in the paper; False: [I-h-l-I]. Absent from checkpoints saved before the setting
    # existed: those models had the paper's hidden decoder layer.
    decoder_hidden: bool = True

    @classmethod
    def from_task_config(cls, config: ProfileConfig, n_items: int) -> VAEConfig:
        """The network a run of `config` trains over `n_items` items."""
        return cls(
            n_items=n_items,
            hidden_dim=config.hidden_dim,
            latent_dim=config.latent_dim,
            input_dropout=config.input_dropout,
            decoder_hidden=config.decoder_hidden,
        )

    @property
    def shape(self) -> str:
        """The layer widths, e.g. '[I-600-200-600-I]'."""
        decoder = f"-{self.hidden_dim}" if self.decoder_hidden else ""
        return f"[I-{self.hidden_dim}-{self.latent_dim}{decoder}-I]"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class SparseBatch:
    """CSR rows of a batch as tensors: item `indices`, row `offsets` into them and the `values`."""

    indices: torch.Tensor  # [nnz] int64
    offsets: torch.Tensor  # [batch] int64, start of each row in indices
    values: torch.Tensor  # [nnz] float32
    rows: torch.Tensor  # [nnz] int64, the batch row of each entry

    @property
    def size(self) -> int:
        return int(self.offsets.shape[0])

    def to(self, device: torch.device) -> SparseBatch:
        return SparseBatch(
            *(t.to(device, non_blocking=True) for t in (self.indices, self.offsets, self.values, self.rows))
        )


class WeightedBag(nn.Module):
    """The first encoder layer: each row's weighted sum of item vectors plus a bias, [nnz] -> [batch, hidden].

    One module owning both parameters, so DP-SGD (`pipelines.profiles.privacy`) can compute each user's
    gradient norm for it; its inputs are positional with the batch-sized `offsets` last, as Opacus reads them.
    """

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        nn.init.normal_(self.weight)  # as nn.EmbeddingBag draws it, so seeded runs keep their weights

    def forward(self, indices: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.embedding_bag(indices, self.weight, offsets, mode="sum", per_sample_weights=values) + self.bias


class MultVAE(nn.Module):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_in = WeightedBag(config.n_items, config.hidden_dim)
        self.encoder_out = nn.Linear(config.hidden_dim, 2 * config.latent_dim)
        self.decoder: nn.Module = (
            nn.Sequential(
                nn.Linear(config.latent_dim, config.hidden_dim), nn.Tanh(), nn.Linear(config.hidden_dim, config.n_items)
            )
            if config.decoder_hidden
            else nn.Linear(config.latent_dim, config.n_items)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # Xavier weights and small normal biases, as in the paper's reference code.
        linears = [self.encoder_out, *(m for m in self.decoder.modules() if isinstance(m, nn.Linear))]
        for weight in (self.encoder_in.weight, *(layer.weight for layer in linears)):
            nn.init.xavier_uniform_(weight)
        for bias in (self.encoder_in.bias, *(layer.bias for layer in linears)):
            nn.init.normal_(bias, std=0.001)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # Checkpoints saved before WeightedBag kept the first layer's bias beside it.
        if prefix + "encoder_bias" in state_dict:
            state_dict[prefix + "encoder_in.bias"] = state_dict.pop(prefix + "encoder_bias")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def encode(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each [batch, latent]."""
        values = batch.values
        # L2-normalise each row (the paper normalises before dropout).
        norms = torch.zeros(batch.size, device=values.device).index_add_(0, batch.rows, values * values).sqrt()
        values = values / norms.clamp_min(1e-12)[batch.rows]
        if self.training and self.config.input_dropout > 0:
            values = F.dropout(values, p=self.config.input_dropout)
        hidden = torch.tanh(self.encoder_in(batch.indices, values, batch.offsets))  # [batch, hidden]
        mu, logvar = self.encoder_out(hidden).chunk(2, dim=-1)  # 2 x [batch, latent]
        return mu, logvar

    def forward(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item logits [batch, n_items] (from a sample in training, the mean otherwise), mu, logvar."""
        mu, logvar = self.encode(batch)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar

    def loss(self, batch: SparseBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO with KL weight `beta`: (loss, mean negative log-likelihood, mean KL)."""
        _, nll, kl = self.user_losses(batch, beta)
        return nll.mean() + beta * kl.mean(), nll.mean(), kl.mean()

    def user_losses(self, batch: SparseBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each user's negative ELBO, negative log-likelihood and KL, each [batch] (DP-SGD clips per user)."""
        logits, mu, logvar = self(batch)
        log_probs = F.log_softmax(logits, dim=-1)  # [batch, n_items]
        # Multinomial log-likelihood sum_i x_ui log pi_ui, read only where x_ui != 0.
        picked = log_probs[batch.rows, batch.indices] * batch.values  # [nnz]
        nll = -torch.zeros(batch.size, device=logits.device).index_add_(0, batch.rows, picked)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)
        return nll + beta * kl, nll, kl

"""Mult-VAE: the ELBO's terms, KL annealing, learning on tiny data, sparse batches that never densify."""

from __future__ import annotations

import dataclasses
import resource

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from pipelines.errors import ConfigError
from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.model import MultVAE, VAEConfig
from pipelines.profiles.training import beta_at, infer, iter_batches, learning_rate_factor, to_batch, train

TINY = ProfileConfig(hidden_dim=16, latent_dim=4, epochs=30, batch_size=8, learning_rate=1e-2)


def _vae(n_items: int, **overrides: object) -> VAEConfig:
    return VAEConfig.from_task_config(ProfileConfig(**overrides), n_items)  # type: ignore[arg-type]


def _blocks(n_users: int = 40, n_items: int = 12) -> sp.csr_matrix:
    """Two taste groups: even users use items 0-5, odd users items 6-11."""
    rows, cols = [], []
    for user in range(n_users):
        base = 0 if user % 2 == 0 else n_items // 2
        for item in range(base, base + n_items // 2, 1 + user % 3):
            rows.append(user)
            cols.append(item)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def test_loss_is_multinomial_nll_plus_beta_times_gaussian_kl() -> None:
    torch.manual_seed(0)
    matrix = sp.csr_matrix(np.array([[2.0, 0, 1, 0], [0, 1, 0, 3]], dtype=np.float32))
    model = MultVAE(_vae(4, hidden_dim=5, latent_dim=3, input_dropout=0.5)).eval()
    batch = to_batch(matrix)
    loss, nll, kl = model.loss(batch, beta=0.3)
    logits, mu, logvar = model(batch)
    dense = torch.from_numpy(matrix.toarray())
    expected_nll = -(F.log_softmax(logits, dim=-1) * dense).sum(dim=1).mean()
    expected_kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)).mean()
    assert nll.item() == pytest.approx(expected_nll.item(), rel=1e-6)
    assert kl.item() == pytest.approx(expected_kl.item(), rel=1e-6)
    assert loss.item() == pytest.approx(nll.item() + 0.3 * kl.item(), rel=1e-6)
    assert kl.item() > 0


def test_encoder_matches_dense_layer_on_normalised_input() -> None:
    torch.manual_seed(1)
    matrix = sp.csr_matrix(np.array([[3.0, 0, 4, 0], [0, 0, 0, 2]], dtype=np.float32))
    model = MultVAE(_vae(4, hidden_dim=5, latent_dim=3)).eval()
    mu, _ = model.encode(to_batch(matrix))
    dense = F.normalize(torch.from_numpy(matrix.toarray()), dim=1)  # [2, 4]
    hidden = torch.tanh(dense @ model.encoder_in.weight + model.encoder_in.bias)
    expected = model.encoder_out(hidden)[:, :3]
    torch.testing.assert_close(mu, expected)


def test_beta_grows_linearly_then_stays_at_the_cap() -> None:
    config = ProfileConfig(beta_cap=0.2, anneal_fraction=0.5)
    assert beta_at(0, 100, config) == 0.0
    assert beta_at(25, 100, config) == pytest.approx(0.1)
    assert beta_at(50, 100, config) == pytest.approx(0.2)
    assert beta_at(99, 100, config) == pytest.approx(0.2)


def test_learning_rate_is_flat_until_the_decay_start_then_falls_along_a_half_cosine() -> None:
    assert [learning_rate_factor(step, 100, 0.5) for step in (0, 50, 75, 100)] == pytest.approx([1, 1, 0.5, 0])
    assert learning_rate_factor(50, 100, 0.0) == pytest.approx(0.5)  # cosine from the first update
    assert {learning_rate_factor(step, 100, 1.0) for step in range(101)} == {1.0}  # constant


def test_training_applies_the_schedule_and_keeps_each_epochs_rate() -> None:
    matrix = _blocks()
    decaying = dataclasses.replace(TINY, epochs=6, lr_decay_start=0.0)
    _, history = train(matrix, decaying, torch.device("cpu"), seed=2)
    rates = [h.learning_rate for h in history]
    assert rates == sorted(rates, reverse=True) and rates[0] < decaying.learning_rate
    assert rates[len(rates) // 2 - 1] == pytest.approx(decaying.learning_rate / 2)  # cos(pi / 2) at mid-run
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    _, history = train(matrix, dataclasses.replace(decaying, lr_decay_start=1.0), torch.device("cpu"), seed=2)
    assert {h.learning_rate for h in history} == {decaying.learning_rate}


def test_decay_start_outside_zero_to_one_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="lr_decay_start=1.5"):
        ProfileConfig(lr_decay_start=1.5)


def test_training_fits_two_taste_groups() -> None:
    matrix = _blocks()
    model, history = train(matrix, TINY, torch.device("cpu"), seed=7)
    assert history[-1].nll < 0.8 * history[0].nll
    assert history[-1].beta == pytest.approx(TINY.beta_cap)
    assert history[0].beta < TINY.beta_cap
    embeddings, _ = infer(model, matrix, torch.device("cpu"), batch_size=16)
    even, odd = embeddings[0::2].mean(axis=0), embeddings[1::2].mean(axis=0)
    spread = np.linalg.norm(embeddings[0::2] - even, axis=1).mean()
    assert np.linalg.norm(even - odd) > 2 * spread  # the groups separate in the latent space


def test_training_is_deterministic_for_a_seed() -> None:
    matrix = _blocks()
    config = dataclasses.replace(TINY, epochs=3)
    first, _ = train(matrix, config, torch.device("cpu"), seed=3)
    second, _ = train(matrix, config, torch.device("cpu"), seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_category_affinity_is_a_distribution_over_categories() -> None:
    matrix = _blocks()
    model, _ = train(matrix, dataclasses.replace(TINY, epochs=2), torch.device("cpu"), seed=1)
    onehot = sp.csr_matrix((np.ones(12), (np.arange(12), np.arange(12) // 6)), shape=(12, 2))
    _, affinity = infer(model, matrix, torch.device("cpu"), batch_size=16, category_onehot=onehot)
    assert affinity is not None and affinity.shape == (40, 2)
    np.testing.assert_allclose(affinity.sum(axis=1), 1.0, rtol=1e-5)


def test_sparse_batches_never_densify_the_matrix() -> None:
    # 1,000,000 users x 50,000 items: dense float32 would be 200 GB. Shuffled training batches and the
    # encoding of every user must stay within 1 GB of growth.
    rng = np.random.default_rng(0)
    n_users, n_items, per_user = 1_000_000, 50_000, 3
    cols = rng.integers(0, n_items, size=n_users * per_user)
    indptr = np.arange(0, n_users * per_user + 1, per_user)
    matrix = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(n_users, n_items))
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = 0
    for batch in iter_batches(matrix, 10_000, rng.permutation(n_users)):
        assert batch.size == 10_000 and batch.values.numel() == 10_000 * per_user
        seen += batch.size
    assert seen == n_users
    model = MultVAE(_vae(n_items, hidden_dim=8, latent_dim=4))
    embeddings, _ = infer(model, matrix, torch.device("cpu"), batch_size=20_000)
    growth_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) * 1024 / 1e9
    assert embeddings.shape == (n_users, 4) and np.isfinite(embeddings).all()
    assert growth_gb < 1.0, f"peak RSS grew by {growth_gb:.2f} GB"


def test_training_on_a_wide_matrix_keeps_memory_to_one_batch_of_logits() -> None:
    # 2,000 users x 100,000 items: dense float32 is 0.8 GB; one batch of 50 users' logits is 20 MB.
    rng = np.random.default_rng(1)
    n_users, n_items, per_user = 2_000, 100_000, 4
    cols = rng.integers(0, n_items, size=n_users * per_user)
    indptr = np.arange(0, n_users * per_user + 1, per_user)
    matrix = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(n_users, n_items))
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = ProfileConfig(hidden_dim=8, latent_dim=4, epochs=1, batch_size=50)
    _, history = train(matrix, config, torch.device("cpu"), seed=0)
    growth_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) * 1024 / 1e9
    assert np.isfinite(history[0].loss)
    assert growth_gb < 0.4, f"peak RSS grew by {growth_gb:.2f} GB"


def test_linear_decoder_maps_the_latent_straight_to_item_logits() -> None:
    torch.manual_seed(2)
    config = _vae(6, hidden_dim=5, latent_dim=3, decoder_hidden=False)
    model = MultVAE(config).eval()
    assert isinstance(model.decoder, torch.nn.Linear) and model.decoder.weight.shape == (6, 3)
    assert (
        config.shape == "[I-5-3-I]" and _vae(6, hidden_dim=5, latent_dim=3, decoder_hidden=True).shape == "[I-5-3-5-I]"
    )
    batch = to_batch(sp.csr_matrix(np.array([[1.0, 0, 1, 0, 0, 0]], dtype=np.float32)))
    logits, mu, _ = model(batch)
    torch.testing.assert_close(logits, model.decoder(mu))
    rebuilt = MultVAE(VAEConfig(**config.to_dict()))
    rebuilt.load_state_dict(model.state_dict())  # a checkpoint's saved config rebuilds the same layers


def test_the_network_follows_the_task_config() -> None:
    task = ProfileConfig()
    config = VAEConfig.from_task_config(task, n_items=7)
    assert (config.hidden_dim, config.latent_dim, config.input_dropout, config.decoder_hidden) == (
        task.hidden_dim, task.latent_dim, task.input_dropout, task.decoder_hidden,
    )  # fmt: skip


def test_a_checkpoint_saved_before_the_decoder_setting_rebuilds_the_papers_decoder() -> None:
    saved = _vae(6, hidden_dim=5, latent_dim=3).to_dict()
    del saved["decoder_hidden"]
    assert VAEConfig(**saved).shape == "[I-5-3-5-I]"


def test_training_with_a_linear_decoder_fits_two_taste_groups() -> None:
    matrix = _blocks()
    _, history = train(matrix, dataclasses.replace(TINY, decoder_hidden=False), torch.device("cpu"), seed=7)
    assert history[-1].nll < 0.8 * history[0].nll

"""Generator quality in the evaluation classifier's feature space, always beside the real-vs-real floor.

- conditional accuracy: share of generated images the classifier assigns to the requested class;
- classifier Frechet distance (the FID formula on our classifier's features, not Inception's: not FID);
- KID: unbiased MMD^2 with the cubic polynomial kernel, averaged over subsets (Binkowski et al. 2018);
- precision / recall of Kynkaanniemi et al. (2019): k-NN manifolds of real and generated features.
The floor is the same figures for real training images against real held-out images at the same sample
size: a generator cannot be expected to beat it, and "within 3x of the floor" is a meaningful target.
"""

from __future__ import annotations

import torch


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), in float64 via symmetric eigensolves."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # [d, d]
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * middle)


def kernel_inception_distance(
    a: torch.Tensor, b: torch.Tensor, *, subsets: int = 50, subset_size: int = 1000, seed: int = 0
) -> float:
    """Mean unbiased MMD^2 over random subsets, kernel k(x, y) = (x.y / d + 1)^3."""
    a, b = a.double(), b.double()
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=gen)[:m]]
        y = b[torch.randperm(len(b), generator=gen)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        total += float((kxx.sum() - kxx.trace()) / off + (kyy.sum() - kyy.trace()) / off - 2 * kxy.mean())
    return total / subsets


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Precision: fake samples inside the real manifold; recall: real samples inside the fake manifold."""

    def radii(x: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(x, x)  # [n, n]
        return dist.kthvalue(k + 1, dim=1).values  # k-th neighbour, skipping the point itself

    def covered(points: torch.Tensor, manifold: torch.Tensor, r: torch.Tensor) -> float:
        dist = torch.cdist(points, manifold)  # [n_points, n_manifold]
        return float((dist <= r.unsqueeze(0)).any(dim=1).float().mean())

    real, fake = real.double(), fake.double()
    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def within_class_spread(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean distance between two samples of the same class, averaged over classes: ~0 when noise is ignored."""
    spreads = []
    for c in labels.unique():
        x = features[labels == c].double()
        if len(x) > 1:
            spreads.append(torch.cdist(x, x).sum() / (len(x) * (len(x) - 1)))  # the diagonal is zero
    return float(torch.stack(spreads).mean())


def feature_metrics(reference: torch.Tensor, sample: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """Frechet, KID and precision/recall of `sample` features against `reference` features."""
    precision, recall = precision_recall(reference, sample)
    return {
        "frechet": frechet_distance(reference, sample),
        "kid": kernel_inception_distance(reference, sample, seed=seed),
        "precision": precision,
        "recall": recall,
    }

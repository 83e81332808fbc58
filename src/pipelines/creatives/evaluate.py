"""One evaluation protocol for candidates, champions and benchmarks, with its real-vs-real floor.

Reference: held-out real images (never seen by the classifier or the GAN), capped at `eval_samples`.
Generated: as many images as the reference, with the reference's class labels, from a fixed seed.
Floor: the same number of real *training* images against the same reference. Same sizes on both sides,
so the generated figures and the floor are directly comparable (Frechet and KID are size-biased).
"""

from __future__ import annotations

import torch

from pipelines.creatives.classifier import ImageClassifier, predict
from pipelines.creatives.gan import Generator
from pipelines.creatives.metrics import feature_metrics


@torch.no_grad()
def sample_generator(
    generator: Generator, labels: torch.Tensor, seed: int, device: torch.device, batch_size: int = 1000
) -> torch.Tensor:
    """Images for `labels` from noise drawn on the CPU with `seed`; returns CPU tensors."""
    generator.eval()
    z = torch.randn(len(labels), generator.spec.z_dim, generator=torch.Generator().manual_seed(seed))
    out = [
        generator(z[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)).cpu()
        for i in range(0, len(labels), batch_size)
    ]
    return torch.cat(out)  # [n, c, h, w]


def evaluate(
    generator: Generator,
    classifier: ImageClassifier,
    train: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    *,
    eval_samples: int,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Quality figures of `generator` beside the floor; every value a finite float for the registry."""
    gen = torch.Generator().manual_seed(seed)
    held_images, held_labels = held_out
    held_probs, _ = predict(classifier, held_images, device)
    classifier_accuracy = float((held_probs.argmax(1) == held_labels).float().mean())

    ref_index = torch.randperm(len(held_images), generator=gen)[:eval_samples]
    ref_labels = held_labels[ref_index]
    _, ref_features = predict(classifier, held_images[ref_index], device)
    floor_index = torch.randperm(len(train[0]), generator=gen)[: len(ref_index)]
    _, floor_features = predict(classifier, train[0][floor_index], device)
    fake = sample_generator(generator, ref_labels, seed, device)
    fake_probs, fake_features = predict(classifier, fake, device)

    metrics = {
        "classifier_accuracy": classifier_accuracy,
        "conditional_accuracy": float((fake_probs.argmax(1) == ref_labels).float().mean()),
        "eval_samples": float(len(ref_index)),
    }
    metrics |= feature_metrics(ref_features, fake_features, seed=seed)
    metrics |= {f"floor_{k}": v for k, v in feature_metrics(ref_features, floor_features, seed=seed).items()}
    metrics["frechet_ratio"] = metrics["frechet"] / max(metrics["floor_frechet"], 1e-9)
    return metrics

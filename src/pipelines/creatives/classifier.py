"""The evaluation classifier: a small CNN trained on the store's own real product images.

Inception weights cannot be downloaded here, so quality is measured in the feature space of a classifier
we train ourselves: its held-out accuracy says how far its judgement can be trusted, its softmax gives
conditional accuracy and creative confidence, its penultimate layer gives the features for the classifier
Frechet distance, KID and precision/recall. Never call those numbers FID.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierSpec:
    n_classes: int
    image_size: int = 28
    image_channels: int = 1
    channels: int = 32
    feature_dim: int = 128

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImageClassifier(nn.Module):
    """Two conv-pool stages and a 128-d feature layer; ~91% on Fashion-MNIST after 3 epochs."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        ch = spec.channels
        self.conv1 = nn.Conv2d(spec.image_channels, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, 2 * ch, 3, padding=1)
        side = spec.image_size // 4
        self.fc = nn.Linear(2 * ch * side * side, spec.feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(spec.feature_dim, spec.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [batch, ch, size/2, size/2]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [batch, 2ch, size/4, size/4]
        return F.relu(self.fc(h.flatten(1)))  # [batch, feature_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@torch.no_grad()
def predict(
    model: ImageClassifier, images: torch.Tensor, device: torch.device, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities [n, classes], features [n, feature_dim]) on the CPU, in input order."""
    model.eval()
    probs, feats = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        f = model.features(x)
        probs.append(F.softmax(model.head(f), dim=1).cpu())
        feats.append(f.cpu())
    return torch.cat(probs), torch.cat(feats)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: ClassifierSpec,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> ImageClassifier:
    """Train on (images [n, c, h, w] in [-1, 1], labels [n]) with Adam; deterministic for a seed."""
    torch.manual_seed(seed)
    model = ImageClassifier(spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        permutation = torch.randperm(len(images), generator=order)
        total = 0.0
        for start in range(0, len(images), batch_size):
            index = permutation[start : start + batch_size]
            x, y = images[index].to(device), labels[index].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        log.info(
            "classifier epoch %d/%d: loss %.4f, %d images, %.0f images/s",
            epoch + 1,
            epochs,
            total / len(images),
            len(images),
            (epoch + 1) * len(images) / (time.perf_counter() - started),
        )
    model.eval()
    return model


def accuracy(model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    probs, _ = predict(model, images, device)
    return float((probs.argmax(dim=1) == labels).float().mean())
